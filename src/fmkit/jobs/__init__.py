"""The application layer: the services every front end calls.

The CLI, the SageMaker container entry, the local SageMaker API and the web console all
start work here, so a job started from any of them is the same job: the same channel
reader, the same atomic save, the same registry record and the same log lines.

- :mod:`fmkit.jobs.training`: training jobs, in the foreground or in the background;
- :mod:`fmkit.jobs.tuning`: hyperparameter tuning jobs;
- :mod:`fmkit.jobs.transform`: batch transform jobs;
- :mod:`fmkit.jobs.endpoints`: serving processes (deploy, describe, list, delete);
- :mod:`fmkit.jobs.evaluation` and :mod:`fmkit.jobs.models`: scoring and exporting models.

Each service takes a plain request (a frozen dataclass) and returns a registry record
(:mod:`fmkit.registry.records`); progress goes to logging, never to print.
"""
