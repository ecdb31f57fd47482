"""The code that runs inside a workload job, on local files only: the dataset and model
folders `commonlab workload run` pulled, a scratch folder for checkpoints, an output folder
it publishes, and a metrics file it forwards to the facility. Nothing here reaches the
facility's database or network: a job is untrusted, and so is everything it runs."""
