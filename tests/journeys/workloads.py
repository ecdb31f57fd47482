"""What the journeys train on with the facility's own workloads: tiny configurations that
finish in seconds on a laptop's CPU, and datasets whose every record names its source and
licence (speech clips spoken by espeak-ng, or short stories)."""

from __future__ import annotations

import json
from pathlib import Path

SPEECH_TOML = """
task = "asr"
sequence_length = 512  # audio frames: 2.5 s at this model's 200 frames a second
batch_size = 4
max_steps = 8
checkpoint_every = 4
log_every = 1

[model]
architecture = "wav2vec2"

[model.size]
hidden_size = 32
num_hidden_layers = 2
num_attention_heads = 2
intermediate_size = 64
conv_dim = [32, 32, 32]
conv_kernel = [10, 4, 4]
conv_stride = [5, 4, 4]
num_conv_pos_embeddings = 16
num_conv_pos_embedding_groups = 4

[optimizer]
learning_rate = 3e-3
schedule = "constant"
"""

TEXT_TOML = """
sequence_length = 16
batch_size = 4
max_steps = 8
checkpoint_every = 4
log_every = 1

[model]
architecture = "gpt2"
size = { n_layer = 1, n_head = 2, n_embd = 16 }

[tokenizer]
vocab_size = 300
"""

SENTENCES = [
    f"{who} {verb} the {thing} near the lake."
    for who in ("Amina", "Baraka", "Chausiku", "Dalila")
    for verb in ("reads", "sings", "finds")
    for thing in ("book", "song", "letter")
]


def speech_dataset(folder: Path) -> None:
    """Kiswahili and English clips spoken by espeak-ng, as Parquet: the encoded audio, its
    transcript, and the source and licence of each record."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.workloads.speech import UTTERANCES, espeak

    rows = [(u, espeak(u.text, voice=u.voice)) for u in UTTERANCES]
    table = pa.table({
        "id": [u.key for u, _ in rows],
        "audio": [wav for _, wav in rows],
        "text": [u.text for u, _ in rows],
        "source": [f"espeak-ng voice {u.voice}" for u, _ in rows],
        "license": ["CC0-1.0"] * len(rows),
    })  # fmt: skip
    (folder / "data").mkdir(parents=True)
    pq.write_table(table, folder / "data" / "train.parquet")


def text_dataset(folder: Path) -> None:
    (folder / "data").mkdir(parents=True)
    with (folder / "data" / "train.jsonl").open("w") as fh:
        for i, line in enumerate(SENTENCES):
            fh.write(json.dumps({"text": line, "source": f"storyteller-{i % 3}",
                                 "license": "CC0-1.0"}) + "\n")  # fmt: skip
