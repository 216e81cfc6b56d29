/* The public header compiles on its own, as the first and only include. */
#include <rmig/rmig.h>

int main(void)
{
	struct rmig_config cfg = { .field_mask = RMIG_CFG_ADDRESS };

	cfg.address = "127.0.0.1:0";
	return cfg.field_mask == RMIG_CFG_ADDRESS ? 0 : 1;
}
