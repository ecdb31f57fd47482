"""Workloads: training, fine-tuning and evaluating models as facility jobs.

`config.py` is what a workload is asked to do. The facility side (`service.py`, `api.py`)
admits a workload as a compute job and keeps its configuration; `runtime/` is the code that
runs inside the job, on local files only (the job's CLI pulls its inputs and pushes what it
made, `commonlab workload run`)."""
