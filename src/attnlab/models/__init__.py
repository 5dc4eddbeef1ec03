"""Plain ``nn.Module`` models; none of them knows about Lightning, data files or metrics."""
