/* change.c -- placeholder until the codec lands. */
#include "worker/change.h"
