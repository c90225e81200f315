"""Agentic Operator: runs AgenticSession custom resources as Kubernetes Jobs."""

__version__ = "0.1.0"
