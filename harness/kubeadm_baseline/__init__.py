"""A kubeadm cluster on the lab's machines, as a benchmark and a lesson, not a product path.

kubeadm's HA layout on the same machines as the harness's cluster: the harness's haproxy and
keepalived VIP in front (as kubeadm's HA guide does), `kubeadm init` with MASTER_URL on the VIP
as the control-plane endpoint and stacked etcd, the other masters joined with
`--control-plane` and the uploaded certificates, the workers joined with the bootstrap token,
and the harness's flannel build on top as a DaemonSet (kube-subnet-mgr). Every binary and image
comes from the artifact cache, built from the same pins (artifacts.py).

    python -m harness.kubeadm_baseline up LAB     # machines, then every phase (labs/seed.yaml)
    python -m harness.kubeadm_baseline check LAB  # the core checks that apply, and which do not
    python -m harness down LAB

benchmarks/baseline_kubeadm.py times it against the harness's own bring-up in one run;
docs/kubeadm-vs-hard-way.md explains, phase by phase, what kubeadm does that the guide does by
hand.
"""
