// Explain/refactor and cloud escalation tests: being written.
