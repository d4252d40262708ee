"""The sticky-session rule: keep the session's model unless the new choice beats it by the margin."""
import numpy as np

from tagrouter.core.decision import sticky


def test_the_kept_model_stays_unless_beaten_by_more_than_the_margin():
    utility = np.array([0.50, 0.54, 0.70])
    assert sticky(utility, 1, 0, 0.05) == (0, True)  # 0.04 does not beat 0.05
    assert sticky(utility, 2, 0, 0.05) == (2, False)  # 0.20 does
    assert sticky(utility, 2, 2, 0.05) == (2, True)  # the choice is the kept model
    assert sticky(utility, 2, None, 0.05) == (2, False)  # a new session, or its model is no candidate
    assert sticky(utility, 1, 0, 0.0) == (1, False)  # margin 0: any strict win switches
