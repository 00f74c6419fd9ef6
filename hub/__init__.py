"""Publish datasets and adapters to the Hugging Face Hub."""
