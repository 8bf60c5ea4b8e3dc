"""Who may do what: users, roles, tokens, agent identities and the guards that check them."""
