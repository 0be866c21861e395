"""--time-budget-minutes: the epochs fitted to a wall-clock budget, the LR decayed to its end as it
runs out, the fit and the budget's clock kept across a resume. What the tests assert is the
mechanism (a fit made and agreed by the ranks, the schedule ending where training ends, the fit
surviving the resume); how well the times match is the GPU check's business, not a test's."""
import re

import pytest

from conftest import load, run

# tiny.json: 67 steps per epoch, warmup 20 steps, lr 0.002 -> 1e-05, epochs 2 (ignored under a budget).


def fits(out):
    return [(int(m.group(1)), m.group(2)) for m in re.finditer(r"time budget: .*?: (\d+) epochs \(were (\S+)\)", out)]


# Full only (a 24-second budget run out in real time): the fit agreed by two ranks, and the decay
# ending at the last step of a budget used up; the kept resume case makes and keeps a fit.
@pytest.mark.full
def test_budget_fits_the_epochs_and_the_lr_ends_with_the_training(tmp_path):
    code, out = run(["--run-dir", tmp_path, "--time-budget-minutes", 0.4], launcher="mpirun")
    assert "schedule: fitted to 0.4 minutes" in out
    found = fits(out)
    # The first fit comes at the second epoch end after the warmup, from no end at all ("?"), and
    # gives at least one more epoch: beyond the config's 2, whatever the machine's speed.
    assert found and found[0][1] == "?", out[-3000:]
    final = load(tmp_path / "checkpoints" / "last.pt")
    state, sched = final["train_state"], final["lr_scheduler"]
    assert state["fitted_epochs"] == found[-1][0] == state["epoch"] >= 3
    assert state["global_step"] == sched["total_steps"] == 67 * state["epoch"]
    assert state["train_seconds"] > 0
    # Peak LR until the first fit, then a decay that ends at the last step trained.
    lrs = final["history"]["learning_rate"]
    assert abs(lrs[133] - 0.002) < 1e-4
    assert lrs[-1] < 0.02 * 0.002
    assert all(b <= a + 1e-12 for a, b in zip(lrs[134:], lrs[135:])), "the decay never climbs"
    assert final["config"]["epochs"] == 2  # the config says what was asked; the state what was fitted


def test_resume_keeps_the_fit_and_the_budget_spent(tmp_path):
    # A budget of 5 minutes, cut by --max-steps: each leg is short, and the fit at step 134 (the
    # end of epoch 2) stays below 90% of the budget on however slow a machine.
    run(["--run-dir", tmp_path, "--time-budget-minutes", 5, "--max-steps", 140])
    first = load(tmp_path / "checkpoints" / "last.pt")
    state = first["train_state"]
    assert state["global_step"] == 140 and state["fitted_epochs"] >= 3 and state["train_seconds"] > 0
    code, out = run(["--run-dir", tmp_path, "--time-budget-minutes", 5, "--max-steps", 160])
    assert "resumed from" in out
    # The budget's clock goes on from the checkpoint, and the saved fit is the plan.
    assert f"time budget: {state['train_seconds'] / 60:.1f} of 5 minutes spent, {state['fitted_epochs']} epochs" in out
    assert "LR schedule re-planned" not in out
    final = load(tmp_path / "checkpoints" / "last.pt")
    assert final["train_state"]["train_seconds"] > state["train_seconds"]
    assert final["lr_scheduler"]["total_steps"] == first["lr_scheduler"]["total_steps"] or \
        "(were {})".format(state["fitted_epochs"]) in out  # the same plan, or a re-fit of it


def test_budget_and_total_steps_exclude_each_other(tmp_path):
    code, out = run(["--run-dir", tmp_path, "--time-budget-minutes", 1, "--total-steps", 100], check=False)
    assert code != 0
    assert "'time_budget_minutes' and 'total_steps'" in out


@pytest.mark.full  # a finished budgeted run extended (the stretch: schedule and budget unit tests)
def test_a_larger_budget_extends_a_finished_run(tmp_path):
    run(["--run-dir", tmp_path, "--time-budget-minutes", 0.2])
    before = load(tmp_path / "checkpoints" / "last.pt")["train_state"]
    code, out = run(["--run-dir", tmp_path, "--time-budget-minutes", 0.4])
    assert "its end is fitted to the time budget again" in out, out[-3000:]
    after = load(tmp_path / "checkpoints" / "last.pt")
    # Fitted again after two more epoch ends, with at least one epoch beyond them; the LR goes on
    # from where it ended (the minimum), as with more --epochs.
    assert after["train_state"]["epoch"] == after["train_state"]["fitted_epochs"] >= before["epoch"] + 3
    assert max(after["history"]["learning_rate"][before["global_step"]:]) <= 2e-5
