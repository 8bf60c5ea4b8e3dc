"""How an agent learns what to run: TUF metadata through ``tuf.ngclient``, online or offline."""
