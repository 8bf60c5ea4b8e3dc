"""Who is calling and what they may do: the principal, roles and permissions, and the
guards every controller declares. Below every domain (the identity service, which signs
people in and writes the audit log, included), so that any of them may guard its
endpoints without an import cycle."""
