"""DotMac Platform: a multi-tenant Django monolith for ISPs."""
