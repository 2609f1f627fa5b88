"""The theoretical bound of each failover, computed from the lab's own settings, and the one rule
that judges a measurement against it.

A scenario's report puts its measurement next to one of these, so a trainee can see whether the
cluster failed over as fast as its configuration allows, and where the rest of the time went.
Each bound has a direction: an `upper` bound is a ceiling the measurement must stay under (a
takeover must not take longer), a `lower` bound a floor it must reach (writes must fail for at
least the outage). `judge` applies the slack rule below, the only place it is written; the
scenario tests and the reports both call it. The rationale is in docs/scenarios.md ("Bounds and
the slack rule").
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.lab import Lab

# Component defaults the rendered units do not override; named here so reports can cite them.
LEADER_LEASE_DURATION_S = 15.0   # --leader-elect-lease-duration (controller-manager, scheduler)
LEADER_RETRY_PERIOD_S = 2.0      # --leader-elect-retry-period
LEADER_RETRY_JITTER = 1.2        # client-go leaderelection waits up to retry × (1 + 1.2)
ETCD_ELECTION_TIMEOUT_S = 1.0    # etcd --election-timeout=1000 (ms)
ETCD_HEARTBEAT_S = 0.1           # etcd --heartbeat-interval=100 (ms)
NODE_MONITOR_GRACE_S = 50.0      # kube-controller-manager --node-monitor-grace-period default
VRRP_SCRIPT_INTERVAL_S = 1.0     # check_haproxy interval in the rendered keepalived.conf
VRRP_SCRIPT_FALL = 2
NODE_MONITOR_PERIOD_S = 5.0      # kube-controller-manager --node-monitor-period default

# The slack rule for noisy hosts (docs/scenarios.md, "Bounds and the slack rule"):
#   allowed = bound × (1 + SLACK_RATIO) + SLACK_S   for an upper bound
#   allowed = bound × (1 − SLACK_RATIO) − SLACK_S   for a lower bound (never below 0)
# SLACK_RATIO: the daemons' timers fire late in proportion to how starved the host is.
# SLACK_S: the instrument's resolution, one poll interval plus one remote command at each end.
SLACK_RATIO = 0.25
SLACK_S = 0.5

UPPER, LOWER = "upper", "lower"


@dataclass(frozen=True)
class Bound:
    seconds: float
    formula: str              # how it was computed, with the lab's numbers in it
    direction: str = UPPER    # UPPER: the measurement must not exceed it; LOWER: must reach it

    @property
    def allowed(self) -> float:
        """The bound with the slack rule applied, in the bound's direction."""
        slack = self.seconds * SLACK_RATIO + SLACK_S
        if self.direction == UPPER:
            return round(self.seconds + slack, 2)
        return round(max(self.seconds - slack, 0.0), 2)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    measured: float | None
    bound: float
    allowed: float
    direction: str
    text: str        # one line a person reads: what was measured against what

    def to_json(self) -> dict:
        return dict(self.__dict__)


def judge(bound: Bound, measured: float | None, what: str = "measured") -> Verdict:
    """The measurement against the bound plus the slack rule. A missing measurement fails: a
    scenario that could not measure proved nothing."""
    sign = "≤" if bound.direction == UPPER else "≥"
    if measured is None:
        return Verdict(False, None, bound.seconds, bound.allowed, bound.direction,
                       f"{what}: not measured (needs {sign} {bound.allowed:g} s)")
    ok = measured <= bound.allowed if bound.direction == UPPER else measured >= bound.allowed
    word = "within" if ok else "OUTSIDE"
    return Verdict(ok, measured, bound.seconds, bound.allowed, bound.direction,
                   f"{what} {measured:g} s {word} the {bound.direction} bound {bound.seconds:g} s "
                   f"(with slack: {sign} {bound.allowed:g} s)")


def _parse_duration(text: str) -> float:
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text[:-1])


def _backup_priority(lab: Lab) -> int:
    priorities = sorted(lab.keepalived.priorities.values(), reverse=True)
    return priorities[1] if len(priorities) > 1 else priorities[0]


def vrrp_master_down(lab: Lab) -> Bound:
    """RFC 3768: Master_Down_Interval = 3 × Advertisement_Interval + Skew_Time, with
    Skew_Time = (256 − Priority) / 256 × Advertisement_Interval for the backup's priority."""
    advert = lab.keepalived.advert_int
    priority = _backup_priority(lab)
    skew = (256 - priority) / 256 * advert
    return Bound(round(3 * advert + skew, 2),
                 f"3 × advert_int {advert}s + skew (256−{priority})/256 × {advert}s = {3 * advert + skew:.2f}s")


def vrrp_priority_zero(lab: Lab) -> Bound:
    """A MASTER that stops gracefully sends priority 0; the backup waits only Skew_Time."""
    advert = lab.keepalived.advert_int
    priority = _backup_priority(lab)
    skew = (256 - priority) / 256 * advert
    return Bound(round(skew, 2), f"skew (256−{priority})/256 × advert_int {advert}s = {skew:.2f}s")


def vrrp_track_script(lab: Lab) -> Bound:
    """haproxy gone: the track script fails `fall` times `interval` apart, the MASTER goes to FAULT
    and sends priority 0, and the backup takes over after its skew."""
    detect = VRRP_SCRIPT_INTERVAL_S * VRRP_SCRIPT_FALL
    skew = vrrp_priority_zero(lab).seconds
    return Bound(round(detect + skew, 2),
                 f"script interval {VRRP_SCRIPT_INTERVAL_S:g}s × fall {VRRP_SCRIPT_FALL} + skew {skew:.2f}s")


def haproxy_backend_down(lab: Lab) -> Bound:
    inter = _parse_duration(lab.haproxy.check_inter)
    return Bound(round(inter * lab.haproxy.fall, 2),
                 f"haproxy fall {lab.haproxy.fall} × inter {lab.haproxy.check_inter} = {inter * lab.haproxy.fall:g}s")


def leader_handoff() -> Bound:
    """A killed leader never releases its Lease: the others wait for it to expire, then take it
    on their next try, which client-go jitters to at most retry × (1 + 1.2)."""
    retry = LEADER_RETRY_PERIOD_S * (1 + LEADER_RETRY_JITTER)
    return Bound(round(LEADER_LEASE_DURATION_S + retry, 2),
                 f"lease duration {LEADER_LEASE_DURATION_S:g}s + retry period {LEADER_RETRY_PERIOD_S:g}s "
                 f"× (1 + jitter {LEADER_RETRY_JITTER:g}) = {LEADER_LEASE_DURATION_S + retry:g}s")


def etcd_election() -> Bound:
    return Bound(ETCD_ELECTION_TIMEOUT_S + ETCD_HEARTBEAT_S,
                 f"election timeout {ETCD_ELECTION_TIMEOUT_S:g}s + heartbeat {ETCD_HEARTBEAT_S:g}s "
                 "(only when the stopped member led)")


def member_rejoined() -> Bound:
    """A replaced member that `systemctl start` reported ready (Type=notify: it has joined and
    applied its own membership entry) is a follower the leader updates every heartbeat; an
    election timeout covers a leader change meanwhile."""
    return Bound(ETCD_ELECTION_TIMEOUT_S + ETCD_HEARTBEAT_S,
                 f"election timeout {ETCD_ELECTION_TIMEOUT_S:g}s + heartbeat {ETCD_HEARTBEAT_S:g}s "
                 "(from ready to the leader's revision)")


def restored_cluster_elected() -> Bound:
    """Members restored from a snapshot form a new cluster with no leader: each waits a
    randomized election timeout (between one and two timeouts) before it campaigns, and a
    member is ready once the leader has committed its attributes, one heartbeat later."""
    seconds = 2 * ETCD_ELECTION_TIMEOUT_S + ETCD_HEARTBEAT_S
    return Bound(seconds, f"randomized election timeout up to 2 × {ETCD_ELECTION_TIMEOUT_S:g}s + heartbeat "
                          f"{ETCD_HEARTBEAT_S:g}s = {seconds:g}s (from the restored members' start to all healthy)")


QUORUM_OUTAGE_S = 15.0           # how long the quorum-lost scenario keeps two members down


def quorum_lost() -> Bound:
    """Without a quorum nothing can be written: the API's write gap is the outage itself, plus
    an election once the members are back."""
    return Bound(QUORUM_OUTAGE_S + ETCD_ELECTION_TIMEOUT_S,
                 f"no quorum for the {QUORUM_OUTAGE_S:g}s outage + election timeout {ETCD_ELECTION_TIMEOUT_S:g}s "
                 "(writes must fail for at least that long)", LOWER)


def node_not_ready() -> Bound:
    """The node lifecycle controller looks every node-monitor-period and marks a node whose last
    heartbeat is older than the grace period."""
    return Bound(NODE_MONITOR_GRACE_S + NODE_MONITOR_PERIOD_S,
                 f"node-monitor-grace-period {NODE_MONITOR_GRACE_S:g}s + node-monitor-period "
                 f"{NODE_MONITOR_PERIOD_S:g}s")
