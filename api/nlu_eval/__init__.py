"""NLU evaluation: run the Rasa model on a labelled file and score intents and entities."""
