"""Pure planning: tree views, strategies, prompts. No I/O."""
