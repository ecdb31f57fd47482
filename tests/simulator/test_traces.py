"""Trace loaders and workload building: good files load, bad ones name the line or field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commonlab.errors import InvalidInput
from commonlab.simulator.inputs import load_regulation, partitions
from commonlab.simulator.traces import NEVER_ENDED, NEVER_RAN, load_trace
from commonlab.simulator.workload import bind_classes, build_workload
from tests.simulator.helpers import fleet
from tests.simulator.helpers import trace as helpers_trace

ALIBABA = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time\n"
)
SACCT = "JobID|Account|Submit|Start|End|AllocTRES|Partition\n"
PLAIN = "job_id,tenant,submit,runtime,accelerators,class,one_domain,wait\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_alibaba_trace_loads_with_fractions_rounded_up(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "openb_pod_list_x.csv",
        ALIBABA
        + "p0,1,1,1,460,,LS,Running,0,100,10\n"
        + "p1,1,1,8,1000,V100M16|V100M32,BE,Running,5,50,5\n"
        + "p2,1,1,0,0,,BE,Running,0,10,0\n"
        + "p3,1,1,1,1000,,BE,Pending,0,10,\n",
    )
    trace = load_trace(path)
    assert trace.kind == "alibaba"
    assert list(trace.runtime) == [90, 45] and list(trace.accelerators) == [1, 8]
    assert list(trace.recorded_wait) == [10, 0]
    assert trace.classes[1] == ("V100M16", "V100M32")
    assert sum(trace.set_aside.values()) == 2
    assert "1 GPU-sharing tasks" in trace.notes[0]


def test_sacct_export_loads_jobs_not_steps(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sacct.txt",
        SACCT + "7|physics|2024-05-01T10:00:00|2024-05-01T10:05:00|2024-05-01T11:05:00|"
        "billing=8,cpu=8,gres/gpu:a100=4,gres/gpu=4,node=1|gpu\n"
        + "7.batch|physics|2024-05-01T10:00:00|2024-05-01T10:05:00|"
        "2024-05-01T11:05:00|cpu=8,gres/gpu=4|gpu\n"
        + "8|bio|2024-05-01T10:00:00|Unknown|Unknown|gres/gpu=2|gpu\n"
        # Still running when exported: it started, but its runtime is not known yet.
        + "9|bio|2024-05-01T10:00:00|2024-05-01T10:01:00|Unknown|gres/gpu=2|gpu\n",
    )
    trace = load_trace(path)
    assert trace.kind == "sacct"
    assert list(trace.runtime) == [3600] and list(trace.recorded_wait) == [300]
    assert list(trace.accelerators) == [4] and trace.classes == [("a100",)]
    assert trace.tenant == ["physics"]
    assert trace.set_aside == {NEVER_RAN: 1, NEVER_ENDED: 1}


HELIOS = (
    "job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,duration,queue\n"
)
ACME = (
    "job_id,user,node_num,gpu_num,cpu_num,type,state,submit_time,start_time,end_time,duration,"
    "queue,gpu_time\n"
)


def test_a_helios_cluster_log_loads_with_its_waits_and_set_asides(tmp_path: Path) -> None:
    """Helios cluster_log.csv (SC'21): local times without a zone; CPU-only jobs, jobs that
    never started and jobs still running when the log was cut are counted, not simulated."""
    path = write(
        tmp_path,
        "cluster_log.csv",
        HELIOS + "1425511,uXBbc,vcJkd,1,1,1,COMPLETED,2020-06-09 18:41:01,2020-06-09 18:41:01,"
        "2020-06-10 04:55:09,36848,0\n"
        + "1425512,uVMrF,vchbv,4,16,1,FAILED,2020-06-09 18:41:27,2020-06-09 18:42:27,"
        "2020-06-09 18:45:36,189,60\n"
        + "1425513,uVMrF,vchbv,0,16,1,COMPLETED,2020-06-09 18:41:28,2020-06-09 18:41:28,"
        "2020-06-09 18:45:36,248,0\n"
        + "1425514,uVMrF,vchbv,8,16,1,CANCELLED,2020-06-09 18:41:29,,,0,0\n"
        + "1425515,uVMrF,vchbv,8,16,1,RUNNING,2020-06-09 18:41:30,2020-06-09 18:41:31,,0,1\n",
    )
    trace = load_trace(path)
    assert trace.kind == "cluster-log"
    assert list(trace.runtime) == [36848, 189]
    assert list(trace.recorded_wait) == [0, 60]
    assert list(trace.accelerators) == [1, 4]
    assert trace.tenant == ["uXBbc", "uVMrF"]
    assert list(trace.line) == [2, 3]
    assert trace.set_aside == {
        "asks for no accelerators (CPU-only)": 1,
        "never ran in the recorded trace (no runtime)": 1,
        "still running when the trace ends (no end time)": 1,
    }
    by_vc = load_trace(path, tenant_column="vc")
    assert by_vc.tenant == ["vcJkd", "vchbv"]
    with pytest.raises(InvalidInput, match=r"cluster_log.csv: missing column\(s\) team"):
        load_trace(path, tenant_column="team")


def test_an_acme_trace_loads_with_zoned_times_and_1024_gpu_gangs(tmp_path: Path) -> None:
    """Acme trace_seren.csv (NSDI'24): times carry a zone; gangs reach 1,024 GPUs."""
    path = write(
        tmp_path,
        "trace_seren.csv",
        ACME + "5778432,u5907,1,8,128,Other,FAILED,2023-03-01 00:18:22+08:00,"
        "2023-03-01 00:18:54+08:00,2023-03-01 00:20:51+08:00,117,32,936.0\n"
        + "5778469,u6000,128,1024,16384,Pretrain,COMPLETED,2023-03-01 00:23:58+08:00,"
        "2023-03-01 00:24:11+08:00,2023-03-02 00:24:11+08:00,86400,13,88473600.0\n",
    )
    trace = load_trace(path)
    assert trace.kind == "cluster-log"
    assert list(trace.runtime) == [117, 86400]
    assert list(trace.recorded_wait) == [32, 13]
    assert list(trace.accelerators) == [8, 1024]
    assert trace.submit[1] - trace.submit[0] == 336
    assert load_trace(path, tenant_column="type").tenant == ["Other", "Pretrain"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("openb_pod_list_a.csv", "name,num_gpu\np,1\n", "missing column(s) gpu_milli"),
        (
            "openb_pod_list_b.csv",
            ALIBABA + "p,1,1,1,1000,,LS,Running,0,5,10\n",
            "line 2: deletion_time 5 is before scheduled_time 10 (negative duration)",
        ),
        (
            "openb_pod_list_w.csv",
            ALIBABA + "p,1,1,1,1000,,LS,Running,10,50,5\n",
            "line 2: scheduled_time 5 is before creation_time 10 (negative wait)",
        ),
        (
            "openb_pod_list_c.csv",
            ALIBABA + "p,1,1,x,1000,,LS,Running,0,5,1\n",
            "line 2: num_gpu must be an integer",
        ),
        (
            "s.txt",
            SACCT + "1|a|2024-05-01T10:00:00|2024-05-01T12:00:00|2024-05-01T11:00:00|"
            "gres/gpu=1|p\n",
            "line 2: End 2024-05-01T11:00:00 is before Start",
        ),
        (
            "s2.txt",
            "JobID|Account|Submit|Start|End\n1|a|x|y|z\n",
            "missing column AllocTRES or ReqTRES",
        ),
        (
            "s3.txt",
            SACCT + "1|a|yesterday|2024-05-01T12:00:00|2024-05-01T13:00:00|gres/gpu=1|p\n",
            "line 2: Submit must be a time",
        ),
        ("j.csv", PLAIN + "1,a,0,-5,1,,,\n", "line 2: runtime -5 is negative"),
        (
            "k.csv",
            PLAIN + "1,a,0,5,1,,,\n2,a,zero,5,1,,,\n",
            "line 3: submit must be a finite number",
        ),
        ("l.csv", "job_id,tenant,submit\n", "missing column(s) runtime, accelerators"),
        ("m.csv", PLAIN + "1,a,0,5,1,,2,\n", "line 2: one_domain must be 0 or 1"),
    ],
)
def test_bad_traces_name_the_line_or_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_trace(write(tmp_path, name, text))
    assert message in caught.value.message
    assert str(tmp_path / name) in caught.value.message


def test_unknown_accelerator_class_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "jobs.csv", PLAIN + "1,a,0,5,1,H100,0,\n2,a,1,5,1,TPUv9,0,\n")
    workload = build_workload([load_trace(path)], pools=["p"])
    parts = partitions(
        fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4})
    )
    with pytest.raises(InvalidInput, match=r"jobs.csv line 3: unknown accelerator class 'TPUv9'"):
        bind_classes(workload, parts)


def test_stacking_and_rate_scaling_are_reported(tmp_path: Path) -> None:
    rows = "".join(f"{i},t{i % 3},{i * 10},100,{1 + i % 2},,0,\n" for i in range(30))
    trace = load_trace(write(tmp_path, "jobs.csv", PLAIN + rows))
    workload = build_workload([trace], pools=["a", "b"], jobs=75, load=0.5, accelerators=8)
    assert len(workload) == 75
    assert set(workload.pool.tolist()) == {0, 1}
    assert any("stacked 3 copies" in line for line in workload.how)
    assert any("0.50 x the capacity of 8" in line for line in workload.how)
    assert (workload.submit[1:] >= workload.submit[:-1]).all()


def test_a_workload_too_small_for_its_load_is_refused(tmp_path: Path) -> None:
    """20 jobs cannot fill 100,000 accelerators: squeezing their arrivals would simulate an
    idle facility and attach a meaningless what-if to a motion."""
    rows = "".join(f"{i},t{i % 3},{i * 10},100,1,,0,\n" for i in range(20))
    trace = load_trace(write(tmp_path, "jobs.csv", PLAIN + rows))
    with pytest.raises(InvalidInput, match=r"20 jobs cannot offer a load of 1.1 on 100,000 "):
        build_workload([trace], pools=["a"], load=1.1, accelerators=100_000)


def test_regulation_shares_must_sum_to_100(tmp_path: Path) -> None:
    document = {
        "regulation": {
            "title": "t",
            "capacity": {
                "national_pools": 50,
                "open_calls": 30,
                "smes_and_public_bodies": 15,
                "directors_reserve": 10,
            },
        },
        "contribution_scale": {"shares": {"DE": 100}},
    }
    path = write(tmp_path, "r.json", json.dumps(document))
    with pytest.raises(
        InvalidInput,
        match=r"regulation.capacity: the capacity split sums to "
        r"105%, not 100%",
    ):
        load_regulation(path)
    document["regulation"]["capacity"]["directors_reserve"] = 5
    document["contribution_scale"]["shares"] = {"DE": 60, "FR": 30}
    from commonlab.simulator.inputs import entitlements

    with pytest.raises(InvalidInput, match=r"contribution_scale.shares: .*sums to 90%"):
        entitlements(load_regulation(write(tmp_path, "r2.json", json.dumps(document))))


def test_tenants_are_numbered_in_name_order_whatever_the_hash_seed() -> None:
    # Tenant numbers break ties in Fair Tree and in the queue heap: they must not follow
    # the iteration order of a set of strings, which changes with PYTHONHASHSEED.
    trace = helpers_trace(
        [
            {"submit": 0, "runtime": 1, "size": 1, "tenant": "zeta"},
            {"submit": 1, "runtime": 1, "size": 1, "tenant": "alpha"},
            {"submit": 2, "runtime": 1, "size": 1, "tenant": "mu"},
        ]
    )
    workload = build_workload([trace], pools=["p"])
    assert workload.tenants == ["t/alpha", "t/mu", "t/zeta"]
