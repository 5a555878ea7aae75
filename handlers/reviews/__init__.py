"""Access reviews (SPEC §7): recertification campaigns as data in the store plus timers the sweep drives.

``model`` holds the typed ``reviews:`` block of the policy, ``calendar`` the pure business-day and
schedule arithmetic, ``snapshot`` reads and validates who holds what, ``campaign`` starts campaigns.
"""
