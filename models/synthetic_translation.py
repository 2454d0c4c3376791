"""Random-weight Marian (OPUS-MT architecture) models, built locally with no download: for tests (``tiny``: proves
loading, tokenising and routing) and for benchmarks (``opus-mt``: the size of a real OPUS-MT model, 6+6 layers,
d_model 512, a 58k vocabulary, so its compute per token is a real model's). Their output is whatever random weights
say: a bias on one ordinary token keeps it from ending at once, so a translation runs to the decoding cap, which
makes latencies measured on them an upper bound for a real model of the same size.
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
SIZES = {
    # vocabulary, d_model, layers, heads, feed-forward
    "tiny": (0, 16, 1, 2, 32),
    "opus-mt": (58_101, 512, 6, 8, 2048),
}


def build_random_marian(directory: Path, size: str = "tiny", source: str = "en", target: str = "fr",
                        corpus: list[str] | None = None) -> Path:
    """A Hugging Face Marian model directory with random weights. ``tiny``: a 60-piece SentencePiece vocabulary
    (words split into short pieces); ``opus-mt``: a word-level SentencePiece model of ``corpus`` (so its sentences
    take as many tokens as real OPUS-MT gives them, about one per word), the vocabulary padded to a real model's
    size."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    vocab_size, d_model, layers, heads, ffn = SIZES[size]
    directory.mkdir(parents=True, exist_ok=True)
    if size == "tiny":
        spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS * 5), model_prefix=str(directory / "spm"),
                                       vocab_size=60, model_type="unigram", character_coverage=1.0, minloglevel=2)
    else:
        text = [*CORPUS, *(corpus or [])]
        spm.SentencePieceTrainer.train(sentence_iterator=iter(text * 5), model_prefix=str(directory / "spm"),
                                       vocab_size=4000, hard_vocab_limit=False, model_type="word",
                                       character_coverage=1.0, minloglevel=2)
    for name in ("source.spm", "target.spm"):
        (directory / name).write_bytes((directory / "spm.model").read_bytes())
    processor = spm.SentencePieceProcessor(model_file=str(directory / "spm.model"))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    # Marian's layout: </s> and <unk> first, the pieces, and <pad> last (CTranslate2's converter requires it last).
    vocab = ["</s>", "<unk>", *[p for p in pieces if p not in ("<unk>", "<s>", "</s>", "<pad>")]]
    vocab += [f"<extra_{i}>" for i in range(max(0, vocab_size - len(vocab) - 1))]
    vocab.append("<pad>")
    (directory / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(vocab)}, ensure_ascii=False))
    pad = len(vocab) - 1
    config = MarianConfig(vocab_size=len(vocab), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
                          encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
                          decoder_ffn_dim=ffn, max_position_embeddings=512, pad_token_id=pad, eos_token_id=0,
                          decoder_start_token_id=pad, forced_eos_token_id=0, share_encoder_decoder_embeddings=True)
    torch.manual_seed(0)
    model = MarianMTModel(config)
    with torch.no_grad():  # an ordinary piece always wins over </s>: the output is never empty
        model.final_logits_bias[0, 3] = 50.0
    model.save_pretrained(directory)
    tokenizer = MarianTokenizer(vocab=str(directory / "vocab.json"), source_spm=str(directory / "source.spm"),
                                target_spm=str(directory / "target.spm"), source_lang=source, target_lang=target)
    tokenizer.save_pretrained(directory)
    (directory / "spm.model").unlink()
    (directory / "spm.vocab").unlink()
    return directory
