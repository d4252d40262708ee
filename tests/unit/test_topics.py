"""Suite-fitted topic tags: the tagger with the saved vocabulary tags exactly as the evaluation did."""
import numpy as np

from tagrouter.core.tag_model import TagModel
from tagrouter.core.vocabulary import Vocabulary
from tagrouter.offline.topics import fit_topics


class FakeEncoder:
    dim = 8


def test_a_vocabulary_with_topics_tags_like_the_topic_model(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    topics = fit_topics(x, (2, 5))
    base = Vocabulary.build([{"name": "task:a", "level": "task", "description": "a"}], x[:1])
    vocab = base.with_topics(topics.centroids, "test")
    vocab.save(tmp_path)
    tagger = TagModel(FakeEncoder(), Vocabulary.load(tmp_path), per_level=2, min_score=-1.0)
    tagged = tagger.tag_encoded(["q"] * 10, x[:10], [5] * 10)
    expected = topics.assign(x[:10])
    for got, want in zip(tagged, expected):
        got_topics = [(n, round(s, 5)) for n, level, s in got.tags if n.startswith("topic:")]
        assert got_topics == [(n, round(s, 5)) for n, s in want]
    assert vocab.without_groups().version == base.version
