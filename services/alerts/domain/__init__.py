"""Alert logic free of I/O: lifecycle state machine, rules, webhook filters, signing, retries."""
