"""Identity (institutions, people, roles, tokens, clearances) and the public record.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 23:55:37.918391
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

import commonlab.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_institutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("created_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_institutions")),
        sa.UniqueConstraint("name", name=op.f("uq_identity_institutions_name")),
    )
    with op.batch_alter_table("identity_institutions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_institutions_country"), ["country"], unique=False
        )

    op.create_table(
        "record_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_record_checkpoints")),
    )
    op.create_table(
        "record_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("type", sa.String(length=80), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("time", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_entries")),
        sa.UniqueConstraint("seq", name=op.f("uq_record_entries_seq")),
    )
    with op.batch_alter_table("record_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_entries_leaf_hash"), ["leaf_hash"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_record_entries_subject"), ["subject"], unique=False)
        batch_op.create_index(batch_op.f("ix_record_entries_type"), ["type"], unique=False)

    op.create_table(
        "record_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("updated_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_head")),
    )
    # The one head row the sequencer locks: the empty tree, whose root is SHA-256("").
    head = sa.table(
        "record_head",
        sa.column("id", sa.Integer),
        sa.column("size", sa.BigInteger),
        sa.column("root_hash", sa.LargeBinary),
        sa.column("updated_at", commonlab.db.UTCDateTime),
    )
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "size": 0,
                "root_hash": hashlib.sha256(b"").digest(),
                "updated_at": commonlab.db.utcnow(),
            }
        ],
    )
    op.create_table(
        "record_tiles",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_record_tiles")),
    )
    op.create_table(
        "record_witnesses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("verifier_key", sa.Text(), nullable=False),
        sa.Column("registered_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", commonlab.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_witnesses")),
        sa.UniqueConstraint("name", name=op.f("uq_record_witnesses_name")),
    )
    op.create_table(
        "identity_people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("orcid", sa.String(length=19), nullable=True),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["identity_institutions.id"],
            name=op.f("fk_identity_people_institution_id_identity_institutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_people")),
        sa.UniqueConstraint("email", name=op.f("uq_identity_people_email")),
        sa.UniqueConstraint("orcid", name=op.f("uq_identity_people_orcid")),
        sa.UniqueConstraint("pseudonym", name=op.f("uq_identity_people_pseudonym")),
    )
    with op.batch_alter_table("identity_people", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_people_institution_id"), ["institution_id"], unique=False
        )

    op.create_table(
        "record_cosignatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=False),
        sa.Column("witness", sa.String(length=200), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("created_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkpoint_size"],
            ["record_checkpoints.size"],
            name=op.f("fk_record_cosignatures_checkpoint_size_record_checkpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_cosignatures")),
    )
    with op.batch_alter_table("record_cosignatures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_cosignatures_checkpoint_size"), ["checkpoint_size"], unique=False
        )

    op.create_table(
        "record_private_openings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["record_entries.id"],
            name=op.f("fk_record_private_openings_entry_id_record_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_private_openings")),
    )
    with op.batch_alter_table("record_private_openings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_private_openings_entry_id"), ["entry_id"], unique=False
        )

    op.create_table(
        "identity_clearances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("compartments", sa.JSON(), nullable=False),
        sa.Column("granted_by_id", sa.Integer(), nullable=True),
        sa.Column("granted_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", commonlab.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["granted_by_id"],
            ["identity_people.id"],
            name=op.f("fk_identity_clearances_granted_by_id_identity_people"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_people.id"],
            name=op.f("fk_identity_clearances_person_id_identity_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_clearances")),
    )
    with op.batch_alter_table("identity_clearances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_clearances_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "identity_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("granted_by", sa.String(length=40), nullable=False),
        sa.Column("granted_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_people.id"],
            name=op.f("fk_identity_roles_person_id_identity_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_roles")),
        sa.UniqueConstraint("person_id", "role", name=op.f("uq_identity_roles_person_id_role")),
    )
    with op.batch_alter_table("identity_roles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_roles_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "identity_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_id", sa.String(length=24), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", commonlab.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_people.id"],
            name=op.f("fk_identity_tokens_person_id_identity_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_tokens")),
        sa.UniqueConstraint("key_id", name=op.f("uq_identity_tokens_key_id")),
    )
    with op.batch_alter_table("identity_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_tokens_person_id"), ["person_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_tokens_person_id"))

    op.drop_table("identity_tokens")
    with op.batch_alter_table("identity_roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_roles_person_id"))

    op.drop_table("identity_roles")
    with op.batch_alter_table("identity_clearances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_clearances_person_id"))

    op.drop_table("identity_clearances")
    with op.batch_alter_table("record_private_openings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_private_openings_entry_id"))

    op.drop_table("record_private_openings")
    with op.batch_alter_table("record_cosignatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_cosignatures_checkpoint_size"))

    op.drop_table("record_cosignatures")
    with op.batch_alter_table("identity_people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_people_institution_id"))

    op.drop_table("identity_people")
    op.drop_table("record_witnesses")
    op.drop_table("record_tiles")
    op.drop_table("record_head")
    with op.batch_alter_table("record_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_entries_type"))
        batch_op.drop_index(batch_op.f("ix_record_entries_subject"))
        batch_op.drop_index(batch_op.f("ix_record_entries_leaf_hash"))

    op.drop_table("record_entries")
    op.drop_table("record_checkpoints")
    with op.batch_alter_table("identity_institutions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_institutions_country"))

    op.drop_table("identity_institutions")
