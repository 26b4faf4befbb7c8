"""What a grading is, without a database, a queue or a sandbox.

`plan` (the assignment's settings a grading reads, and its stages' time limits), `outcomes`
(how a stage ends when it does not succeed), `static_check` (the verdict before any training:
rules, parameters, receptive field), `verdict` (the final verdict and score after evaluation) and
`scoring`. The Celery workers (`workers.pipeline`) and the local `grade` command both use them.
"""
