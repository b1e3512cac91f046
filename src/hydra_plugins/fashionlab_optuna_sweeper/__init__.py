"""fashionlab's Optuna sweeper (`hydra/sweeper=fashionlab_optuna`, class FashionlabOptunaSweeper): hydra-optuna-sweeper
1.4's, plus pruning, shared studies, dead-worker recovery and clean stops. One name, as that plugin's layout has it
(package hydra_optuna_sweeper, config `optuna`, class OptunaSweeper)."""
