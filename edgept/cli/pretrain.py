"""`edgept pretrain bert|vit`: pre-train a fresh encoder (masked LM for BERT; MAE or supervised for ViT)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgept.cli.console import out
from edgept.cli.train_options import BATCH_SIZE, EPOCHS, MAX_STEPS, NPROC, PRECISION, QUIET, RESUME, WARMUP

app = typer.Typer(
    name="pretrain",
    help="Pre-train a BERT (masked LM) or a ViT (MAE or supervised) from scratch; writes an HF checkpoint.",
    no_args_is_help=True,
)

PRESET = typer.Option("mini", help="Model size: tiny (2x128), mini (4x256), small (4x512), base (12x768) — layers x hidden.")
LAYERS = typer.Option(None, help="Override the preset's number of layers.")
HIDDEN = typer.Option(None, help="Override the preset's hidden width.")
HEADS = typer.Option(None, help="Override the preset's attention heads.")
FFN = typer.Option(None, help="Override the preset's feed-forward width.")
OUTPUT = typer.Option(..., "-o", "--output", help="Directory for model/, checkpoints/, train_log.jsonl, metrics.json.")
WEIGHT_DECAY = typer.Option(0.01, "--weight-decay", help="AdamW weight decay (weight matrices only).")
EVAL_EVERY = typer.Option(None, "--eval-every", help="Evaluate on held-out data every N steps (default: once per epoch).")
SAVE_EVERY = typer.Option(None, "--save-every", help="Checkpoint every N steps (default: at each evaluation).")
SEED = typer.Option(0, help="Seed for initialisation, shuffling, masking and dropout: the same seed gives the same model.")


def register(root: typer.Typer) -> None:
    root.add_typer(app)


@app.command("bert")
def bert_cmd(
    corpus: list[str] = typer.Option(..., "--corpus", help="UTF-8 .txt files or folders of them (repeat the flag), 'austen' (Jane Austen's novels, shipped), or 'rt-polarity' (its train-split texts, labels dropped)."),
    output: Path = OUTPUT,
    tokenizer: Path = typer.Option(None, "--tokenizer", help="Reuse this tokenizer (a directory with tokenizer.json or vocab.txt) instead of training one."),
    vocab_size: int = typer.Option(8000, "--vocab-size", help="WordPiece vocabulary size when training a tokenizer."),
    cased: bool = typer.Option(False, "--cased", help="Keep case and accents in the trained tokenizer (default: lowercase)."),
    preset: str = PRESET,
    layers: int = LAYERS,
    hidden: int = HIDDEN,
    heads: int = HEADS,
    ffn: int = FFN,
    max_length: int = typer.Option(128, "--max-length", help="Packed sequence length in tokens (also the model's position table)."),
    mask_prob: float = typer.Option(0.15, "--mask-prob", help="Share of tokens predicted (80% [MASK], 10% random, 10% unchanged)."),
    whole_word: bool = typer.Option(False, "--whole-word", help="Mask whole words: all WordPieces of a chosen word together."),
    sop: bool = typer.Option(False, "--sop", help="Add ALBERT's sentence-order prediction (segments of a block swapped half the time)."),
    held_out: float = typer.Option(0.05, "--held-out", help="Share of packed blocks held out for perplexity."),
    dropout: float = typer.Option(0.1, help="Hidden and attention dropout (kept in the saved model); 0 learns faster on short budgets."),
    epochs: float = EPOCHS,
    max_steps: int = MAX_STEPS,
    lr: float = typer.Option(5e-4, help="Peak learning rate (AdamW) after linear warm-up, then linear decay to 0."),
    warmup: float = WARMUP,
    weight_decay: float = WEIGHT_DECAY,
    batch_size: int = BATCH_SIZE,
    eval_every: int = EVAL_EVERY,
    save_every: int = SAVE_EVERY,
    seed: int = SEED,
    nproc: int = NPROC,
    precision: str = PRECISION,
    resume: bool = RESUME,
    quiet: bool = QUIET,
) -> None:
    """Masked-LM pre-training of a fresh BERT on text files; reports held-out perplexity."""
    from edgept.train import TrainConfig
    from edgept.train.pretrain import BertPretrainConfig, MaskingConfig, Shape, pretrain_bert

    config = BertPretrainConfig(
        shape=Shape(preset=preset, num_layers=layers, hidden_size=hidden, num_heads=heads, intermediate_size=ffn),
        max_length=max_length, vocab_size=vocab_size, lowercase=not cased,
        masking=MaskingConfig(probability=mask_prob, whole_word=whole_word), sop=sop, held_out=held_out,
        dropout=dropout,
    )  # fmt: skip
    train = TrainConfig(
        lr=lr, warmup=warmup, weight_decay=weight_decay, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
        eval_every=eval_every, save_every=save_every, seed=seed, nproc=nproc, precision=precision,
    )  # fmt: skip
    m = pretrain_bert(corpus, output, config, train, tokenizer=tokenizer, resume=resume, progress=not quiet)
    curve = m["held_out_perplexity"]
    out.print(
        f"wrote [bold]{m['output']}[/] ({m['steps']} steps, {m['seconds']:.0f} s, {m['params']['total'] / 1e6:.2f}M parameters): "
        f"held-out perplexity {curve[0]['perplexity']:.1f} -> {min(c['perplexity'] for c in curve[1:]):.1f}"
    )


@app.command("vit")
def vit_cmd(
    data: str = typer.Option(..., "--data", help="fashion-mnist, or an image folder (one subfolder per class; labels unused by MAE)."),
    output: Path = OUTPUT,
    objective: str = typer.Option("mae", help="mae (masked autoencoding, self-supervised) or supervised (classification on the labels)."),
    preset: str = typer.Option("tiny", help=PRESET.help),
    layers: int = LAYERS,
    hidden: int = HIDDEN,
    heads: int = HEADS,
    ffn: int = FFN,
    image_size: int = typer.Option(None, "--image-size", help="Square input size (default: 28 for fashion-mnist, else 224)."),
    patch_size: int = typer.Option(4, "--patch-size", help="Patch side in pixels (must divide the image size)."),
    channels: int = typer.Option(None, help="1 (grayscale) or 3 (default: 1 for fashion-mnist, else 3)."),
    mask_ratio: float = typer.Option(0.75, "--mask-ratio", help="MAE: share of patches hidden."),
    decoder_layers: int = typer.Option(1, "--decoder-layers", help="MAE: decoder depth."),
    decoder_hidden: int = typer.Option(128, "--decoder-hidden", help="MAE: decoder width."),
    norm_pix: bool = typer.Option(True, "--norm-pix/--raw-pix", help="MAE: reconstruct per-patch normalised pixels (default) or raw pixels."),
    epochs: float = EPOCHS,
    max_steps: int = MAX_STEPS,
    lr: float = typer.Option(1e-3, help="Peak learning rate (AdamW) after linear warm-up, then linear decay to 0."),
    warmup: float = WARMUP,
    weight_decay: float = typer.Option(0.05, "--weight-decay", help="AdamW weight decay (weight matrices only)."),
    batch_size: int = typer.Option(128, "--batch-size", help="Global batch size (split across --nproc processes)."),
    eval_every: int = EVAL_EVERY,
    save_every: int = SAVE_EVERY,
    seed: int = SEED,
    nproc: int = NPROC,
    precision: str = PRECISION,
    resume: bool = RESUME,
    quiet: bool = QUIET,
) -> None:
    """Pre-train a fresh ViT by MAE (encoder saved; decoder in mae_decoder.safetensors) or supervised classification."""
    from edgept.train import TrainConfig
    from edgept.train.pretrain import MAEConfig, Shape, ViTPretrainConfig, pretrain_vit

    config = ViTPretrainConfig(
        objective=objective, shape=Shape(preset=preset, num_layers=layers, hidden_size=hidden, num_heads=heads, intermediate_size=ffn),
        image_size=image_size, patch_size=patch_size, num_channels=channels,
        mae=MAEConfig(mask_ratio=mask_ratio, decoder_layers=decoder_layers, decoder_hidden=decoder_hidden, norm_pix=norm_pix),
    )  # fmt: skip
    train = TrainConfig(
        lr=lr, warmup=warmup, weight_decay=weight_decay, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
        eval_every=eval_every, save_every=save_every, seed=seed, nproc=nproc, precision=precision,
    )  # fmt: skip
    m = pretrain_vit(data, output, config, train, resume=resume, progress=not quiet)
    result = (
        f"test accuracy {m['test']['accuracy']:.4f}" if "test" in m else f"held-out reconstruction loss {m['held_out_mae_loss']:.4f}"
    )
    out.print(f"wrote [bold]{m['output']}[/] ({m['steps']} steps, {m['seconds']:.0f} s, {m['params']['total'] / 1e6:.2f}M parameters): {result}")
