"""Our own model definitions (no torchvision / hub code): one module per family."""
