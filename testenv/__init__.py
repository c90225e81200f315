"""The local Kubernetes control plane for tests, ``make run`` and benchmarks.

Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler plus kwok (fake nodes that
drive pod status from Stage rules), run as local processes on 127.0.0.1. See docs/testenv.md.
"""

from testenv.binaries import BinariesError, find_binaries
from testenv.controlplane import (
    Cluster,
    ControlPlane,
    ControlPlaneError,
    ExistingCluster,
    KubectlError,
    free_port,
)
from testenv.operator_process import OperatorProcess, OperatorProcessError

__all__ = [
    "BinariesError",
    "Cluster",
    "ControlPlane",
    "ControlPlaneError",
    "ExistingCluster",
    "KubectlError",
    "OperatorProcess",
    "OperatorProcessError",
    "find_binaries",
    "free_port",
]
