"""A submission may wait for its dataset (`waiting_data`), not charged to the quota; a result
keeps its previous verdict while it is regraded (`Result.previous`) and says whether the student
reads its override's reason (`Result.override_reason_shared`; earlier reasons stay private);
workers report their presence for the queue-health page (`WorkerPresence`).

Adding a NOT NULL column makes SQLite rebuild the submission table, which its standing
triggers (0002) refer to: they are dropped before and created again after, unchanged (no
backfill: the standing rows stay valid, no verdict changes here). PostgreSQL alters the table
in place and keeps its triggers.
"""

import importlib

from django.db import migrations, models

standing = importlib.import_module("assignments.migrations.0002_leaderboard_standing")


def _sqlite_triggers(schema_editor, statements) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    for statement in statements:
        schema_editor.execute(statement, params=None)


def drop_sqlite_triggers(apps, schema_editor) -> None:
    _sqlite_triggers(schema_editor, standing.SQLITE_REVERSE)


def create_sqlite_triggers(apps, schema_editor) -> None:
    _sqlite_triggers(schema_editor, standing.SQLITE)


class Migration(migrations.Migration):
    dependencies = [
        ("assignments", "0004_fair_share"),
    ]

    operations = [
        migrations.RunPython(drop_sqlite_triggers, create_sqlite_triggers),
        migrations.AddField(
            model_name="submission",
            name="quota_exempt",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="result",
            name="override_reason_shared",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="result",
            name="previous",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="submission",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("building", "Building"),
                    ("checking", "Checking"),
                    ("training", "Training"),
                    ("evaluating", "Evaluating"),
                    ("waiting_data", "Waiting for data"),
                    ("finished", "Finished"),
                    ("failed", "Failed"),
                    ("error", "Error"),
                    ("cancelled", "Cancelled"),
                ],
                db_index=True,
                default="queued",
                max_length=16,
            ),
        ),
        migrations.RunPython(create_sqlite_triggers, drop_sqlite_triggers),
        migrations.CreateModel(
            name="WorkerPresence",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("node", models.CharField(max_length=200, unique=True)),
                ("queues", models.JSONField(default=list)),
                ("sandbox", models.CharField(blank=True, max_length=32)),
                ("gpus", models.JSONField(default=list)),
                ("concurrency", models.PositiveIntegerField(blank=True, null=True)),
                ("started_at", models.DateTimeField()),
                ("last_seen", models.DateTimeField()),
                ("stopped_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"ordering": ["node"]},
        ),
    ]
