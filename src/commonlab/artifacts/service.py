"""The artifacts domain as other packages use it: repositories (`repos`), resumable uploads
(`uploads`), publishing signed versions (`publish`), reading them (`versions`), tags, lineage
and PROV (`lineage`), garbage collection (`gc`), and the port compute answers (`ports`).

Each use case authorizes first, applies its rules, and writes its rows and its record entry
in one transaction; object bytes live in `store.ObjectStore`. A repository is named by a
`RepoRef`, a version by a `VersionRef` (`refs`). Import from here, not from the modules.
"""

from __future__ import annotations

from commonlab.artifacts.dataset_rows import (
    has_record,
    read_page,
    read_record,
    record_format,
    record_out,
)
from commonlab.artifacts.gc import collect_garbage
from commonlab.artifacts.lineage import (
    derived_versions,
    lineage,
    links,
    prov_document,
    training_data,
)
from commonlab.artifacts.models import Relation, RepoKind
from commonlab.artifacts.ports import JobInputs, provide_job_inputs
from commonlab.artifacts.publish import commit_version
from commonlab.artifacts.refs import RepoRef, VersionRef, parse_ref
from commonlab.artifacts.registry import Registry
from commonlab.artifacts.repos import create_repo, get_repo, list_repos
from commonlab.artifacts.signing import SignatureError, open_envelope
from commonlab.artifacts.tags import set_tag
from commonlab.artifacts.uploads import UploadStatus, put_chunk, start_upload, upload_status
from commonlab.artifacts.versions import (
    FileNotInVersion,
    RevisionNotFound,
    VersionFacts,
    VersionView,
    files_with_sha256,
    get_version,
    list_versions,
    may_read,
    open_file,
    open_files,
    open_records,
    project_outputs,
    read_version,
    split_public_refs,
    version_facts,
    version_level,
    visible_refs,
)

__all__ = [
    "FileNotInVersion",
    "JobInputs",
    "Registry",
    "Relation",
    "RepoKind",
    "RepoRef",
    "RevisionNotFound",
    "SignatureError",
    "UploadStatus",
    "VersionFacts",
    "VersionRef",
    "VersionView",
    "collect_garbage",
    "commit_version",
    "create_repo",
    "derived_versions",
    "files_with_sha256",
    "get_repo",
    "get_version",
    "has_record",
    "lineage",
    "links",
    "list_repos",
    "list_versions",
    "may_read",
    "open_envelope",
    "open_file",
    "open_files",
    "open_records",
    "parse_ref",
    "project_outputs",
    "prov_document",
    "provide_job_inputs",
    "put_chunk",
    "read_page",
    "read_record",
    "read_version",
    "record_format",
    "record_out",
    "set_tag",
    "split_public_refs",
    "start_upload",
    "training_data",
    "upload_status",
    "version_facts",
    "version_level",
    "visible_refs",
]
