"""Code the Rasa server loads: the gateway input channel and custom NLU components."""
