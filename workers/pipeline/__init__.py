"""The grading pipeline: one module per stage, run by Celery tasks or synchronously (`local`).

Stage modules (`build`, `check`, `train`, `evaluate`, `finalize`) are plain functions of their
inputs: no database. `stages` binds them to submissions through `assignments.services.grading`
(the Celery path); `local` chains them in-process for the `grade` command. Both run the same
stage code, so a local grade and a worker's grade agree.
"""
