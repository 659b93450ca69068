"""The demand model: a PyTorch price-response network and its distributed training."""
