"""Which searched parameters matter, by Optuna's own evaluators: fANOVA and PED-ANOVA (optuna-dashboard's).

Computed from the runs' metrics.json, not from a study: a grid, a study or a folder of runs alike.
"""

from __future__ import annotations

import math
import sys

from fashionlab.runs import REPEAT_KEYS, differing_keys, objective
from fashionlab.status import Status

Found = tuple[dict[str, dict[str, float]], str, list[tuple[dict, float]]]  # what importance() returns

MIN_TRIALS = 8  # fewer runs say little about which parameter matters


def importance(runs: list[dict]) -> Found | None:
    """Which searched parameters matter, by Optuna's own evaluators: fANOVA and PED-ANOVA (optuna-dashboard's).

    From the completed runs' objective where there are enough of them; else (a pruned search completes only
    its best trials) from the value every run reported at the deepest epoch they all reached, pruned ones
    included. Returns ({evaluator: {parameter: importance}}, what it was computed from, the (params, value)
    pairs), or None when there is too little to go on.
    """
    own = [r for r in runs if r.get("confirms") is None]
    keys = [k for k in differing_keys(own) if k not in REPEAT_KEYS]
    metric, mode = own[0]["objective"]["metric"], own[0]["objective"]["mode"]
    done = [r for r in own if r["status"] == Status.COMPLETED and not math.isnan(objective(r))]
    if len(done) >= MIN_TRIALS:
        data = [(r["hparams"], objective(r)) for r in done]
        source = f"{metric} of the {len(done)} completed runs"
    else:
        curves = [r for r in own if Status(r["status"]).has_result and r["objective"].get("curve")]
        if len(curves) < MIN_TRIALS:
            return None
        depth = min(max(int(e) for e in r["objective"]["curve"]) for r in curves)
        data = [(r["hparams"], r["objective"]["curve"][str(depth)]) for r in curves]
        source = (
            f"{metric} at epoch {depth}, the deepest epoch all {len(curves)} runs reached (pruned ones included; "
            f"{len(done)} completed)"
        )
    keys = [k for k in keys if all(isinstance(p.get(k), (bool, int, float, str)) for p, _ in data)]
    if not keys:
        return None
    import optuna  # Optuna takes half a second to import: only where there is something to evaluate

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
    distributions: dict[str, optuna.distributions.BaseDistribution] = {}
    for k in keys:
        values = [p[k] for p, _ in data]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and len(set(values)) > 2:
            low, high = float(min(values)), float(max(values))
            distributions[k] = optuna.distributions.FloatDistribution(low, high, log=low > 0 and high / low > 20)
        else:
            distributions[k] = optuna.distributions.CategoricalDistribution(sorted(set(values), key=str))
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for p, value in data:
        params = {
            k: float(p[k]) if isinstance(distributions[k], optuna.distributions.FloatDistribution) else p[k]
            for k in keys
        }
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
    found = {}
    for name, evaluator in (
        ("fANOVA", optuna.importance.FanovaImportanceEvaluator(seed=0)),
        ("PED-ANOVA", optuna.importance.PedAnovaImportanceEvaluator()),
    ):
        try:
            found[name] = dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
        except Exception as e:  # noqa: BLE001 - one evaluator that cannot (e.g. too few runs) leaves the other
            print(f"compare: {name} importance not computed: {e}", file=sys.stderr)
    return (found, source, data) if found else None


def importance_line(found: Found | None) -> list[str]:
    if found is None:
        return []
    scores, source, _ = found
    names = list(scores)
    first = scores[names[0]]
    parts = [f"{k} " + " / ".join(f"{scores[n].get(k, float('nan')):.2f}" for n in names) for k in first]
    return [f"importance ({' / '.join(names)}), from {source}: " + ", ".join(parts)]
