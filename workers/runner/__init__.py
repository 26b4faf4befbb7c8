"""What runs inside the sandbox: ``python -m workers.runner STAGE /job``.

Stages ``build``, ``train`` and ``evaluate`` read ``/job/in/spec.json`` and write
``/job/out/result.json`` (see docs/contracts.md, "Sandbox job layout"). Imports `grader`, never
Django. Exit code 0 whenever a result was written, including failures the submission caused;
non-zero only when the runner itself crashed.
"""
