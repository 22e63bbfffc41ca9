"""Integrations of DynaMO into existing RL trainers: ``dynamo_rl.adapters.trl`` (TRL ``GRPOTrainer`` subclass) and
``dynamo_rl.adapters.verl`` (verl plugin). Each adapter imports its framework only when imported itself."""
