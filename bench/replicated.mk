# bench/replicated.mk: chains of three against fio (issue 4).
