"""`Submission.kind` becomes `Submission.file_format` in Python; the column stays `kind`.

State only: the database is not touched (`sqlmigrate` prints no SQL for it).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assignments", "0005_submission_waiting_data"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameField(
                    model_name="submission",
                    old_name="kind",
                    new_name="file_format",
                ),
                migrations.AlterField(
                    model_name="submission",
                    name="file_format",
                    field=models.CharField(
                        choices=[
                            ("py", "Python module"),
                            ("ipynb", "Jupyter notebook"),
                            ("keras", "Keras archive"),
                            ("json", "Model JSON"),
                        ],
                        db_column="kind",
                        max_length=8,
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
