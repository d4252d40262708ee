"""`tagrouter vocab build`, `tagrouter tag` and `tagrouter tag-quality`: the vocabulary and the tags."""
from __future__ import annotations

import json
from pathlib import Path

from tagrouter.cli.common import fail, text_argument


def cmd_vocab_build(args) -> int:
    from services.common.settings import TaggerSettings
    from tagrouter.core.encoder import Encoder
    from tagrouter.offline.vocab_build import VocabularyError, build_vocabulary

    settings = TaggerSettings.from_env()
    try:
        vocab, report = build_vocabulary(Encoder(settings.model_dir), args.taxonomy, args.corpus, args.raw)
    except VocabularyError as err:
        return fail(str(err))
    vocab.save(args.out)
    levels = ", ".join(f"{n} {lv}" for lv, n in report.kept.items())
    print(f"wrote {args.out}: {len(vocab.tags)} tags ({levels}), version {vocab.version}; "
          f"{sum(len(v) for v in report.merged.values())} candidates merged, {len(report.diffuse)} diffuse "
          f"and {len(report.rare)} rare dropped")
    return 0


def cmd_tag(args) -> int:
    from services.common.settings import TaggerSettings
    from tagrouter.core.tag_model import TagModel

    if not args.text.strip():
        return fail("the text is empty")
    s = TaggerSettings.from_env()
    tagger = TagModel.load(s.model_dir, s.vocab_dir, s.tags_per_level, s.min_score, s.topic_min_score,
                           s.intra_op_threads, use_heads=s.use_heads)
    (tagged,) = tagger.tag([args.text])
    tags = [{"name": n, "level": lv, "score": round(s, 4)} for n, lv, s in tagged.tags]
    abstained = [{"level": a.level, "top": a.top, "probability": round(a.probability, 4), "threshold": a.threshold}
                 for a in tagged.abstained]
    if args.json:
        print(json.dumps({"tags": tags, "abstained": abstained, "vocabulary_version": tagger.vocabulary.version,
                          "input_tokens": tagged.input_tokens, "truncated": tagged.truncated}))
    else:
        for t in tags:
            print(f"{t['level']:<7} {t['name']:<40} {t['score']:.3f}")
        for a in tagged.abstained:  # the heads' levels that said nothing, and why
            print(f"{a.level:<7} {'(none)':<40} its head's top, {a.top} at {a.probability:.4f}, "
                  f"is below {a.threshold:.4f}")
        print(f"vocabulary {tagger.vocabulary.version}, {tagger.kind}")
    return 0


def cmd_tag_quality(args) -> int:
    from services.common.settings import TaggerSettings
    from tagrouter.core.tag_model import TagModel
    from tagrouter.core.vocabulary import Vocabulary
    from tagrouter.offline import tag_ablation, tag_quality, tag_quality_heads, tagger_comparison
    from tagrouter.offline.corpora import CorpusError

    settings = TaggerSettings.from_env()
    # the quality section and the comparison measure the heads; the routing ablation tags as the default
    # served tagger does (the prototype tagger: no heads), on the same encoder
    tagger = TagModel.load(settings.model_dir, settings.vocab_dir, settings.tags_per_level, settings.min_score,
                           settings.topic_min_score, use_heads=True)
    if tagger.heads is None:
        return fail(f"{settings.vocab_dir} holds no tagger heads: run `make tagger-heads`")
    vocab = tagger.vocabulary
    params = (vocab.build_info or {}).get("params", {})
    try:
        prompts = tag_quality.held_out_prompts(args.raw, params.get("held_out_fraction", 0.3))
        baseline = Vocabulary.load(args.baseline_vocab) if args.baseline_vocab else vocab
    except (CorpusError, FileNotFoundError, ValueError) as err:
        return fail(str(err))
    texts = [p.text for p in prompts]
    # each prompt in a call of its own: in a shared call the int8 activations' scale depends on the other
    # prompts (TAGS.md measures by how much, and gives the figures of calls of 64 beside)
    embeddings, features = tagger.encoder.embed_with_features(texts, batch_size=1)
    shared = tagger.encoder.embed_with_features(texts)[1]
    prototypes = tagger_comparison.prototype_tagger(tagger, baseline)
    quality = tag_quality_heads.quality_section(vocab, tagger.heads, baseline, prompts, embeddings, features,
                                                settings.tags_per_level, settings.min_score, settings.topic_min_score,
                                                tag_quality_heads.examples_table(tagger, prototypes),
                                                tag_quality_heads.batch_stability(tagger, texts), shared)
    ablation = comparison = None
    if not args.no_ablation:
        served = tagger_comparison.prototype_tagger(tagger, vocab)
        ablation = tag_ablation.ablation_section(args.suites, served)
        if args.baseline_vocab:
            comparison = tagger_comparison.section(args.suites, args.baseline_vocab, tagger)
    text = tag_quality.render(vocab, len(prompts), quality, ablation, comparison)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def add_parsers(sub) -> None:
    from services.common.settings import DEFAULT_VOCAB_DIR
    from tagrouter.offline import paths
    from tagrouter.offline.vocab_build import TAXONOMY_FILE

    raw = paths.raw_dir()
    vocab = sub.add_parser("vocab", help="the tag vocabulary")
    vocab_sub = vocab.add_subparsers(dest="vocab_command", required=True)
    build = vocab_sub.add_parser("build", help="build the vocabulary from the taxonomy and the query corpora")
    build.add_argument("--taxonomy", type=Path, default=TAXONOMY_FILE)
    build.add_argument("--raw", type=Path, default=raw, help=f"raw corpora folder (default {raw})")
    build.add_argument("--corpus", type=Path, action="append",
                       help="a corpus file (repeatable; default: the known corpora under --raw)")
    build.add_argument("--out", type=Path, default=DEFAULT_VOCAB_DIR)
    build.set_defaults(func=cmd_vocab_build)

    quality = sub.add_parser("tag-quality", help="measure the tagger on held-out labelled queries (docs/TAGS.md)")
    quality.add_argument("--raw", type=Path, default=raw, help=f"raw corpora folder (default {raw})")
    quality.add_argument("--suites", type=Path, default=paths.suites_dir(), help="suites for the ablation")
    quality.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    quality.add_argument("--no-ablation", action="store_true", help="skip the routing ablation and comparison")
    quality.add_argument("--baseline-vocab", type=Path,
                         help="the prototype tagger's vocabulary to compare with (make tag-quality extracts it)")
    quality.set_defaults(func=cmd_tag_quality)

    tag = sub.add_parser("tag", help="tag TEXT in-process and print the tags")
    tag.add_argument("text", type=text_argument)
    tag.add_argument("--json", action="store_true")
    tag.set_defaults(func=cmd_tag)
