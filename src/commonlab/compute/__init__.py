"""Compute: the fleet (sites, partitions, certification), jobs, admission and executors."""
