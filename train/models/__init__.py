"""The course's network architectures and their default specs; which model is which lives on its card
(``train.cards``)."""
