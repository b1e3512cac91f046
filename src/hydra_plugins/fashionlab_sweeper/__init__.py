"""fashionlab's Optuna sweeper: hydra-optuna-sweeper 1.4's, plus pruning, shared studies and dead-worker recovery."""
