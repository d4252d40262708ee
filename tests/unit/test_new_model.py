"""The new-model study's add path and the replay's answers give exactly fit's counts (issue 15)."""
import numpy as np

from tagrouter.core.scoring import pairwise_outcomes
from tagrouter.offline.fit import count_matrix, incidence, tag_index
from tagrouter.offline.new_model import joined_counts


def test_a_model_added_with_all_its_rows_gives_the_counts_of_fitting_all_at_once():
    rng = np.random.default_rng(1)
    q, m = 40, 4
    scores = rng.uniform(size=(q, m)).round(1)
    tokens = rng.integers(1, 300, size=(q, m)).astype(float)
    tags = [[f"t{j}" for j in range(3) if rng.uniform() < 0.5] for _ in range(q)]
    carries = incidence(tags, tag_index(tags))
    rows = np.arange(q)
    full = count_matrix(carries, pairwise_outcomes(scores, 0.05), tokens)
    for new in range(m):
        np.testing.assert_allclose(joined_counts(carries, scores, tokens, 0.05, new, rows, rows), full)
    # with fewer rows, the other models' counts are untouched and the new model's are those rows'
    some = rows[:10]
    part = joined_counts(carries, scores, tokens, 0.05, 2, rows, some)
    assert part[0, 2, 3] == 10
    np.testing.assert_allclose(part[:, [0, 1, 3], 3], full[:, [0, 1, 3], 3])
