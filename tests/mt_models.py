"""A tiny random Marian (OPUS-MT architecture) translation model, built from nothing in a test and converted with
CTranslate2's converter through ``moot models import``'s own code: it proves that loading, tokenising and routing
work, not translation quality (its output is whatever its random weights say; a bias on one ordinary token keeps
that output non-empty).
"""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    "hello everyone i think we should build more homes near the station",
    "bonjour à tous je pense que nous devrions construire plus de logements près de la gare",
    "the park needs more trees and the buses should run at night",
    "le parc a besoin de plus d'arbres et les bus devraient rouler la nuit",
]


def build_tiny_marian(directory: Path) -> Path:
    """A Hugging Face Marian model directory (random weights, a 60-piece SentencePiece vocabulary)."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS * 5), model_prefix=str(directory / "spm"),
                                   vocab_size=60, model_type="unigram", character_coverage=1.0,
                                   minloglevel=2)
    for name in ("source.spm", "target.spm"):
        (directory / name).write_bytes((directory / "spm.model").read_bytes())
    processor = spm.SentencePieceProcessor(model_file=str(directory / "spm.model"))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    # Marian's layout: </s> and <unk> first, the pieces, and <pad> last (the converter requires it last).
    vocab = ["</s>", "<unk>", *[p for p in pieces if p not in ("<unk>", "<s>", "</s>", "<pad>")], "<pad>"]
    (directory / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(vocab)}, ensure_ascii=False))
    pad = len(vocab) - 1
    config = MarianConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                          decoder_ffn_dim=32, max_position_embeddings=512, pad_token_id=pad, eos_token_id=0,
                          decoder_start_token_id=pad, forced_eos_token_id=0, share_encoder_decoder_embeddings=True)
    torch.manual_seed(0)
    model = MarianMTModel(config)
    with torch.no_grad():  # always an ordinary piece, never </s> at once: a non-empty output
        model.final_logits_bias[0, vocab.index("▁the") if "▁the" in vocab else 3] = 50.0
    model.save_pretrained(directory)
    tokenizer = MarianTokenizer(vocab=str(directory / "vocab.json"), source_spm=str(directory / "source.spm"),
                                target_spm=str(directory / "target.spm"), source_lang="en", target_lang="fr")
    tokenizer.save_pretrained(directory)
    (directory / "spm.model").unlink()
    (directory / "spm.vocab").unlink()
    return directory


def tiny_registry(root: Path, pairs: tuple[tuple[str, str], ...] = (("en", "fr"),)) -> Path:
    """A model registry (``mt_models_dir``) with one tiny model per language pair, imported by Moot's own code."""
    from models.translation import import_model

    registry = root / "registry"
    for source, target in pairs:
        hf = build_tiny_marian(root / f"hf-{source}-{target}")
        import_model(hf, registry, name=f"tiny-{source}-{target}", sources=[source], targets=[target])
    return registry
