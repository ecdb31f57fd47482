"""Who people are: institutions, people, roles, API tokens and clearances."""
