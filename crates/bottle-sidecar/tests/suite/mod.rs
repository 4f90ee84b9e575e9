mod approve_egress;
