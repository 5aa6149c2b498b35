"""Chapter 6's model organism: self-correction data, loss masks, LoRA, the shipped adapter."""
