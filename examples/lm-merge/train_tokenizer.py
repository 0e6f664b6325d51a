"""Trains the tokenizer of the lm-merge example: a GPT-2-style byte-level BPE of 2,048 tokens
(<|endoftext|> at id 0, the end of every document) on the TRAIN documents of the Brown corpus only,
read and split exactly as crucible's `brown` data does (packages/strategies/fixtures/tokenizers/
brown_text.py, checked against the TypeScript by test/text/Brown.test.ts), so no val/test text
shapes the vocabulary. It writes tiny-llama/tokenizer.json and tiny-llama/tokenizer_config.json, and
lives outside that folder: `save` with `format: hf` copies the config folder's small files into the
model folder it writes.

Why 2,048: on Brown's test documents it gives 1.90 tokens per word (4,096: 1.66; 1,024: 2.25).
With the example's hidden size of 128, the output layer costs 128·V per token beside ~0.8 M
multiply-adds for the layers, so 2,048 is the cheapest per word of text (4,096 is ~10% dearer,
1,024 pays for its longer sequences), and a smaller embedding is learnt in fewer steps.

Run: pip install --target /tmp/pytok tokenizers && PYTHONPATH=/tmp/pytok python3 train_tokenizer.py
(tokenizers 0.23.2 wrote the committed tokenizer.json; training is deterministic).
"""
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tiny-llama")
sys.path.insert(0, os.path.join(HERE, "..", "..", "packages", "strategies", "fixtures", "tokenizers"))
import brown_text  # noqa: E402

VOCAB = 2048
EOS = "<|endoftext|>"


def main():
    train = [text for _, _, split, text in brown_text.documents() if split == "train"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    # A document's paragraphs are its lines; the pre-tokenizer keeps merges within words anyway.
    tok.train_from_iterator([p for text in train for p in text.split("\n")], trainer=trainer)
    assert tok.token_to_id(EOS) == 0 and tok.get_vocab_size() == VOCAB
    tok.save(os.path.join(OUT, "tokenizer.json"))
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": EOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1024,
        "tokenizer_class": "GPT2Tokenizer",
    }
    with open(os.path.join(OUT, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    print(f"{len(train)} training documents, vocabulary {tok.get_vocab_size()}")


if __name__ == "__main__":
    main()
