"""The benchmark machinery: systems' common shape, alternating rounds, workloads, reports, goals, machine facts."""
