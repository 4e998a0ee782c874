"""Calls the node makes to URLs someone outside it chose (webhooks, Lightning addresses, LNURL
callbacks, foreign mints): ``addresses`` says which destinations are public, ``outbound`` holds
the policy and the guarded client session every such call goes through."""
