"""LLM plumbing shared by services: the embedded local model and the price table."""
