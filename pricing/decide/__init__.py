"""Deciding tomorrow's prices: the guardrail band, the choice inside it, approval and review.

- :mod:`~pricing.decide.guardrails`: each SKU's band from hard and policy limits (``price_band``);
- :mod:`~pricing.decide.choose`: candidate prices, their expected gain and the rule that picks one;
- :mod:`~pricing.decide.approval`: approval, reviewers' decisions, overrides, the prices in force;
- :mod:`~pricing.decide.stage`: ``pricing score`` (``run_score``) and ``whatif``;
- :mod:`~pricing.decide.review`: the review queue and its decisions (``pricing review``);
- :mod:`~pricing.decide.experiment`: price experiments, their split and readout.

Each module is imported on its own (this package imports none of them): the scoring batches on the
executors unpickle only what they use.
"""
