"""``hydra.sweeper.sampler.ranking=shared_epoch``: TPE ranks a pruned trial against a finished
one at the last epoch both reached, instead of every finished trial first (fer_exp.sweeps.ranking)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from fer_exp.sweeps.ranking import SharedEpochTPESampler, beats, shared_epoch_scores
from fer_exp.sweeps.study import make_sampler

SPACE = {"augmentation.horizontal_flip": CategoricalDistribution([True, False]), "lr": FloatDistribution(0.0, 1.0)}
FLIP = "augmentation.horizontal_flip"


def _trial(number, flip, reports, state=TrialState.PRUNED, value=None):
    trial = create_trial(
        state=state,
        value=value,
        params={FLIP: flip, "lr": number / 100},
        distributions=SPACE,
        intermediate_values=reports,
    )
    trial.number = number
    return trial


def _first_finisher_study(sampler, direction="maximize"):
    """Trials 0 and 1 (flip) finished unopposed with a poor epoch 1; of the 18 pruned after
    epoch 1, the nine without flip beat them there, the nine with flip did not. Optuna's TPE
    still ranks trials 0 and 1 first (its good group: two trials of 20)."""
    sign = 1 if direction == "maximize" else -1
    study = optuna.create_study(direction=direction, sampler=sampler)
    for number in (0, 1):
        study.add_trial(_trial(number, True, {1: sign * 0.2, 2: sign * 0.9}, TrialState.COMPLETE, sign * 0.9))
    for number in range(2, 20):
        flip = number % 2 == 0
        study.add_trial(_trial(number, flip, {1: sign * (0.1 if flip else 0.5 + number / 100)}))
    return study


def _sampled_flips(study, n=10):
    flips = []
    for _ in range(n):
        trial = study.ask(SPACE)
        flips.append(trial.params[FLIP])
        study.tell(trial, state=TrialState.FAIL)  # not counted: each ask sees the same ten trials
    return flips


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_shared_epoch_samples_near_the_trials_that_won_at_the_cut(direction):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plain = _sampled_flips(_first_finisher_study(optuna.samplers.TPESampler(seed=0), direction))
    fair = _sampled_flips(_first_finisher_study(SharedEpochTPESampler(seed=0), direction))
    assert plain.count(True) >= 9, plain  # Optuna's ranking: near the first finisher
    assert fair.count(False) >= 9, fair  # near the trials that beat it at epoch 1


def test_with_nothing_pruned_it_samples_exactly_what_tpe_samples():
    def study(sampler):
        s = optuna.create_study(direction="maximize", sampler=sampler)
        for number in range(12):
            value = (number * 7 % 12) / 12
            s.add_trial(_trial(number, number % 3 == 0, {1: value / 2, 2: value}, TrialState.COMPLETE, value))
        return s

    plain = study(optuna.samplers.TPESampler(seed=3))
    fair = study(SharedEpochTPESampler(seed=3))
    for _ in range(5):
        a, b = plain.ask(SPACE), fair.ask(SPACE)
        assert a.params == b.params
        plain.tell(a, a.params["lr"])
        fair.tell(b, b.params["lr"])


def test_scores_compare_each_pair_where_both_can_be_compared():
    done_good = _trial(0, False, {1: 0.3, 2: 0.8}, TrialState.COMPLETE, 0.8)
    done_poor = _trial(1, False, {1: 0.6, 2: 0.7}, TrialState.COMPLETE, 0.7)
    cut = _trial(2, False, {1: 0.7})
    nan = _trial(3, False, {1: float("nan")})
    never = _trial(4, False, {})
    running = _trial(5, False, {1: 0.9}, TrialState.RUNNING)
    scores = shared_epoch_scores([done_good, done_poor, cut, nan, never, running], maximize=True)
    # 0 beats 1 on value (though 1 was ahead at epoch 1) and nan; the pruned 2 beats both
    # finished trials at epoch 1; 4 ties everyone (no shared epoch); the running 5 is not ranked
    assert scores == {0: 2.5, 1: 1.5, 2: 3.5, 3: 0.5, 4: 2.0}
    assert beats(cut, done_good, maximize=False) == 0.0  # minimizing, 0.7 is worse than 0.3
    assert beats(never, cut, maximize=True) == 0.5


def test_the_config_picks_the_sampler():
    assert type(make_sampler({"name": "tpe", "seed": 1, "ranking": "shared_epoch"})) is SharedEpochTPESampler
    assert type(make_sampler({"name": "tpe", "ranking": "finished_first"})) is optuna.samplers.TPESampler
    assert type(make_sampler({"name": "tpe"})) is optuna.samplers.TPESampler
