"""The stream core: one consume loop, one retry policy, one rebalance listener, one offset store
interface. Storage, the domain runtime and the alerts consumer all run on it."""
